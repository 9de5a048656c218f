"""One model in both toolkits: our checkpoint as a JoeyNMT 2.3.0 checkpoint (bench/speed.py).

    .venv/bin/python bench/peers/joeynmt/convert.py CHECKPOINT MODEL_DIR

Reads our CHECKPOINT (a run's checkpoints/last.pt) and writes MODEL_DIR/latest.ckpt, which
JoeyNMT loads into the model of config.yaml.in: the same weights under JoeyNMT's names.
Only the comparison model converts (GRU 1 layer, bidirectional encoder, Bahdanau attention,
input feeding, bridge, and `model.output_bias=false`, since JoeyNMT's output layer has no
bias); anything else is refused, naming the key. Vocabulary rows are permuted: ours are
<pad> <unk> <s> </s> then the SentencePiece pieces, JoeyNMT's <unk> <pad> <s> </s> then the
same pieces (bench/work/vocab.txt).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from nmt.train.checkpoint import load_checkpoint

# The comparison model (conf/model/gru.yaml, attention=bahdanau), as config.yaml.in states it
EXPECTED = {
    "model.cell": "gru",
    "model.emb_size": 256,
    "model.hidden_size": 512,
    "model.enc_layers": 1,
    "model.bidirectional": True,
    "model.dec_hidden_size": 512,
    "model.dec_layers": 1,
    "model.input_feeding": True,
    "model.bridge": True,
    "model.tie_embeddings": False,
    "model.output_bias": False,
    "attention.type": "bahdanau",
    "attention.size": 512,
}

# our parameter name → JoeyNMT's; the GRU weights keep torch's names on both sides
NAMES = {
    "encoder.embed.weight": "src_embed.lut.weight",
    "decoder.embed.weight": "trg_embed.lut.weight",
    "decoder.attention.key_proj.weight": "decoder.attention.key_layer.weight",
    "decoder.attention.query_proj.weight": "decoder.attention.query_layer.weight",
    "decoder.attention.energy.weight": "decoder.attention.energy_layer.weight",
    "decoder.combine.weight": "decoder.att_vector_layer.weight",
    "decoder.combine.bias": "decoder.att_vector_layer.bias",
    "decoder.output.weight": "decoder.output_layer.weight",
    "bridge.weight": "decoder.bridge_layer.weight",
    "bridge.bias": "decoder.bridge_layer.bias",
}
BY_TOKEN = {"encoder.embed.weight", "decoder.embed.weight", "decoder.output.weight"}


def convert(checkpoint: Path, model_dir: Path) -> Path:
    state = load_checkpoint(checkpoint)
    config = state["config"]
    for key, want in EXPECTED.items():
        section, name = key.split(".")
        got = config[section].get(name, True if name == "output_bias" else None)
        if got != want:
            sys.exit(
                f"error: {checkpoint}: {key}={got!r}, but JoeyNMT's model in config.yaml.in "
                f"has {want!r}; train the run with {key}={str(want).lower()}"
            )
    weights = state["model"]
    vocab = weights["decoder.output.weight"].size(0)
    order = torch.arange(vocab)
    order[[0, 1]] = torch.tensor([1, 0])  # JoeyNMT row i holds our row order[i]
    joey = {}
    for name, tensor in weights.items():
        if name.startswith(("encoder.rnn.", "decoder.rnn.")):
            joey[name] = tensor.clone()
        elif name in NAMES:
            joey[NAMES[name]] = tensor[order].clone() if name in BY_TOKEN else tensor.clone()
        else:
            sys.exit(f"error: {checkpoint}: parameter {name} has no JoeyNMT counterpart")
    model_dir.mkdir(parents=True, exist_ok=True)
    out = model_dir / "latest.ckpt"
    torch.save({"model_state": joey}, out)
    return out


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    print(f"wrote {convert(Path(sys.argv[1]), Path(sys.argv[2]))}")
