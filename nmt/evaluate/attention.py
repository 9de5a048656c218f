"""Attention of chosen sentences, from a greedy translation by a loaded model, for heatmaps."""

from __future__ import annotations

import torch

from nmt import EOS_ID
from nmt.config import DecodeConfig
from nmt.data.batching import make_batch
from nmt.data.tokenizer import Vocabularies, one_line
from nmt.evaluate.plots import AttentionMap
from nmt.model import Seq2Seq
from nmt.search.greedy import greedy_search
from nmt.search.result import max_lengths


def attention_maps(
    model: Seq2Seq,
    vocabs: Vocabularies,
    sentences: list[str],
    lines: list[int],
    decode: DecodeConfig,
    device: torch.device | str = "cpu",
    note: str = "greedy",
) -> list[AttentionMap]:
    """Translate each sentence greedily and keep its attention, labelled by subword pieces.

    Greedy search is used whatever decode.strategy says, because its SearchResult carries
    the attention of the one hypothesis it keeps; decode gives the length limit only.
    lines: the 1-based line number of each sentence, for captions and file names.
    """
    src_ids = vocabs.src.encode(sentences)
    batch = make_batch(src_ids, None, list(range(len(src_ids)))).to(device)
    limit = max_lengths(batch.src_len, decode.max_len_a, decode.max_len_b)
    result = greedy_search(model.eval(), batch.src, batch.src_len, limit)
    maps = []
    for b, (line, text) in enumerate(zip(lines, sentences, strict=True)):
        steps = int(result.lengths[b])
        out_ids = result.tokens[b, :steps].tolist()  # EOS included when produced
        src_len = len(src_ids[b]) + 1  # + EOS, which the encoder also reads
        maps.append(
            AttentionMap(
                line=line,
                weights=result.attention[b, :steps, :src_len].float().cpu().numpy(),  # (T, S)
                src_tokens=vocabs.src.pieces([*src_ids[b], EOS_ID]),
                tgt_tokens=vocabs.tgt.pieces(out_ids),
                source=text,
                output=one_line(vocabs.tgt.decode([out_ids])[0]),  # as nmt-translate writes it
                note=note,
            )
        )
    return maps
