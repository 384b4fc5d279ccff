import numpy as np

from fave.data.batching import parallel_batches, prefix_samples


def _pairs(batches):
    """(history tuple without padding, target) for every supervised position."""
    out = []
    for b in batches:
        for h, t in zip(b.history.tolist(), b.targets.tolist(), strict=True):
            for i, target in enumerate(t):
                if target:
                    out.append((tuple(x for x in h[: i + 1] if x), target))
    return out


def test_all_windows_supervise_every_target_once_with_its_recent_history():
    rng = np.random.default_rng(0)
    train = [np.arange(1, n + 1) + 100 * u for u, n in enumerate([2, 5, 12, 23, 1])]
    pairs = _pairs(parallel_batches(train, max_len=5, batch_size=3, rng=rng, windows="all"))
    users, cuts = prefix_samples(train)
    expected = sorted((u, int(train[u][k])) for u, k in zip(users, cuts, strict=True))
    assert sorted(t for _, t in pairs) == sorted(t for _, t in expected)  # each target exactly once
    for hist, target in pairs:  # the history is the items just before the target, at most max_len
        seq = next(s for s in train if target in s).tolist()
        k = seq.index(target)
        assert 1 <= len(hist) <= 5 and list(hist) == seq[k - len(hist) : k]


def test_last_window_keeps_only_recent_targets():
    train = [np.arange(1, 24)]
    pairs = _pairs(parallel_batches(train, max_len=5, batch_size=3, rng=np.random.default_rng(0), windows="last"))
    assert sorted(t for _, t in pairs) == [19, 20, 21, 22, 23]


def test_random_offsets_supervise_every_target_once_with_contexts_that_change():
    train = [np.arange(1, n + 1) + 100 * u for u, n in enumerate([2, 5, 12, 23, 1, 40])]
    users, cuts = prefix_samples(train)
    expected = sorted(int(train[u][k]) for u, k in zip(users, cuts, strict=True))
    contexts = set()
    for seed in range(6):
        rng = np.random.default_rng(seed)
        pairs = _pairs(parallel_batches(train, 5, 3, rng, windows="all", random_offsets=True))
        assert sorted(t for _, t in pairs) == expected  # each target exactly once, whatever the offset
        for hist, target in pairs:
            seq = next(s for s in train if target in s).tolist()
            k = seq.index(target)
            assert 1 <= len(hist) <= 5 and list(hist) == seq[k - len(hist) : k]
        contexts.add(tuple(sorted((t, len(h)) for h, t in pairs)))
    assert len(contexts) > 1  # the context lengths move between epochs


def test_shuffled_order_mixes_lengths_and_keeps_every_sample():
    train = [np.arange(1, n + 1) + 100 * u for u, n in enumerate(range(2, 40))]
    users, cuts = prefix_samples(train)
    from fave.data.batching import prefix_batches

    def spread(order_by: str) -> float:  # mean within-batch range of history lengths
        rng = np.random.default_rng(0)
        batches = list(prefix_batches(train, 50, 16, rng, order_by=order_by))
        assert sum(len(b.target) for b in batches) == len(cuts)
        return float(np.mean([np.ptp((b.history > 0).sum(1).numpy()) for b in batches]))

    assert spread("bucketed") < 2 < spread("shuffled")


def test_balanced_order_evens_the_targets_per_batch_and_keeps_every_target_once():
    rng = np.random.default_rng(0)  # many short histories and a few long ones, as on Beauty
    lengths = np.concatenate([rng.integers(2, 6, size=120), rng.integers(30, 60, size=12)])
    train = [np.arange(1, n + 1) + 100 * u for u, n in enumerate(lengths)]
    users, cuts = prefix_samples(train)
    expected = sorted(int(train[u][k]) for u, k in zip(users, cuts, strict=True))

    def per_batch(order_by: str) -> tuple[list[int], list[int]]:  # supervised targets and padded width per batch
        batches = list(parallel_batches(train, 20, 16, np.random.default_rng(1), windows="all", order_by=order_by))
        pairs = _pairs(batches)
        assert sorted(t for _, t in pairs) == expected  # each target exactly once
        return [int((b.targets > 0).sum()) for b in batches], [b.history.shape[1] for b in batches]

    bucketed, balanced = per_batch("bucketed"), per_batch("balanced")
    assert len(balanced[0]) == len(bucketed[0])  # as many steps per epoch as fixed-size batches
    total = sum(balanced[0])
    assert max(balanced[0]) - min(balanced[0]) <= 2 * 20  # each cut within one window (<= max_len targets)
    assert max(bucketed[0]) > 3 * min(bucketed[0])  # fixed-size buckets: very uneven
    share = total / len(balanced[0])
    assert all(abs(c - share) <= 20 for c in balanced[0])  # each batch within one window of its share
    shuffled_width = np.mean(per_batch("shuffled")[1])
    assert np.mean(balanced[1]) < shuffled_width  # padded like buckets, not like shuffled batches
