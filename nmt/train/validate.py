"""Validation metrics: perplexity and BLEU of the model on a held-out split, over all ranks."""

from __future__ import annotations

import sacrebleu
import torch

from nmt.config import DecodeConfig
from nmt.data.batching import TokenBatchSampler
from nmt.data.tokenizer import Vocabularies
from nmt.model import Seq2Seq
from nmt.search.decode import decode_ids
from nmt.train.dataset import EncodedSplit
from nmt.train.distributed import Distributed
from nmt.train.loss import batch_loss


@torch.inference_mode()
def valid_nll(
    model: Seq2Seq, data: EncodedSplit, batch_tokens: int, dist: Distributed, device: torch.device
) -> float:
    """Mean negative log-likelihood per target token (no label smoothing), model in eval mode.

    Each rank scores its share of the token batches; the sums are added over ranks.
    """
    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    sampler = TokenBatchSampler(
        [len(s) for s in data.src], [len(t) for t in data.tgt], batch_tokens, shuffle=False
    )
    for index in dist.shard(list(sampler)):
        batch = data.batch(index).to(device)
        total += batch_loss(model, model, batch, 0.0).item()
        tokens += batch.ntokens
    model.train(was_training)
    total, tokens = dist.sum(total, tokens)
    return total / max(tokens, 1)


def valid_bleu(
    model: Seq2Seq,
    data: EncodedSplit,
    decode: DecodeConfig,
    vocabs: Vocabularies,
    dist: Distributed,
    device: torch.device,
) -> tuple[float, list[str]]:
    """Corpus BLEU of `decode`'s search against the raw references, and the detokenised
    hypotheses; each rank decodes its share of the sentences."""
    mine = decode_ids(model, dist.shard(data.src), decode, device)
    hyps = vocabs.tgt.decode(dist.unshard(mine))
    return sacrebleu.corpus_bleu(hyps, [data.tgt_text]).score, hyps
