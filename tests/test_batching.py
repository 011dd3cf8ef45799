"""Fine-tuning batches: shuffled, grouped by length, deterministic per (seed, epoch)."""

import random

import pytest

from lmforge.errors import ConfigError
from lmforge.tasks.base import LengthGrouped, loader


def _lengths(n=1003, seed=0):
    r = random.Random(seed)
    return [r.randint(5, 120) for _ in range(n)]


def _padded_tokens(order, lengths, bs):
    return sum(max(lengths[i] for i in order[j : j + bs]) * len(order[j : j + bs]) for j in range(0, len(order), bs))


def test_length_grouped_order_is_a_seeded_permutation_that_changes_per_epoch():
    lengths = _lengths()
    s = LengthGrouped(lengths, batch_size=16, seed=7)
    first = list(s)
    assert sorted(first) == list(range(len(lengths))) and len(s) == len(lengths)
    assert list(LengthGrouped(lengths, batch_size=16, seed=7)) == first  # same seed, same epoch
    s.set_epoch(1)
    second = list(s)
    assert sorted(second) == sorted(first) and second != first
    assert list(LengthGrouped(lengths, batch_size=16, seed=8)) != first


def test_length_grouped_batches_pad_far_less_than_random_ones():
    lengths = _lengths()
    grouped = list(LengthGrouped(lengths, batch_size=16, seed=0))
    shuffled = list(range(len(lengths)))
    random.Random(0).shuffle(shuffled)
    real = sum(lengths)
    assert _padded_tokens(grouped, lengths, 16) < 1.1 * real < 1.5 * real < _padded_tokens(shuffled, lengths, 16)


def test_the_short_batch_comes_last_so_every_loader_batch_is_one_group():
    lengths = _lengths(n=1003)  # 62 batches of 16 and one of 11
    order = list(LengthGrouped(lengths, batch_size=16, seed=3))
    # every cut of 16 lies within one pool's sorted run: lengths inside a batch are non-increasing
    for j in range(0, len(order), 16):
        batch = [lengths[i] for i in order[j : j + 16]]
        assert batch == sorted(batch, reverse=True), j
    assert len(order) - (len(order) // 16) * 16 == 11


def test_loader_pads_each_batch_to_its_longest_member_and_keeps_order_unshuffled():
    feats = [{"input_ids": list(range(1, n + 1)), "attention_mask": [1] * n, "label": n} for n in (3, 9, 4, 7, 2)]
    batches = list(loader(feats, batch_size=2, pad_id=0, shuffle=False))
    assert [b["label"].tolist() for b in batches] == [[3, 9], [4, 7], [2]]
    assert batches[0]["input_ids"].shape == (2, 9) and batches[0]["input_ids"][0, 3:].eq(0).all()
    assert batches[0]["attention_mask"][0].tolist() == [1, 1, 1] + [0] * 6
    shuffled = [b["label"].tolist() for b in loader(feats, batch_size=2, pad_id=0, shuffle=True, seed=1)]
    assert sorted(x for b in shuffled for x in b) == [2, 3, 4, 7, 9]


def test_data_parallel_ranks_take_their_slice_of_every_full_global_batch(monkeypatch):
    """Under data parallelism (the rank and world size are what torch.distributed would say) each
    rank takes its contiguous slice of each full global batch: together, the ranks see exactly the
    batches one process sees."""
    from lmforge.tasks import base

    lengths = _lengths(n=1003)  # 62 full batches of 16, and 11 left over
    single = list(LengthGrouped(lengths, batch_size=16, seed=5))
    shares = []
    for rank in range(4):
        monkeypatch.setattr(base, "_ranks", lambda r=rank: (r, 4))
        s = LengthGrouped(lengths, batch_size=16, seed=5)
        shares.append(list(s))
        assert len(shares[-1]) == len(s) == 62 * 4
    for k in range(62):
        assert [i for share in shares for i in share[k * 4 : (k + 1) * 4]] == single[k * 16 : (k + 1) * 16], k
    assert base.per_device(16, "task.batch_size") == 4
    monkeypatch.setattr(base, "_ranks", lambda: (0, 3))
    with pytest.raises(ConfigError, match="task.batch_size=16 is not divisible by the 3 processes"):
        base.per_device(16, "task.batch_size")
