from __future__ import annotations

import numpy as np
import pytest

from knowledge.head import EntryHead, cross_fitted


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, 8))
    labels = np.repeat(np.arange(4), 10)
    x = centres[labels] + 0.3 * rng.normal(size=(40, 8))
    return x.astype(np.float32), labels


def test_head_separates_entries_and_gives_probabilities() -> None:
    x, y = _data()
    head = EntryHead.fit(x[:, :4], x[:, 4:], y, 4)
    p = head.proba(x[:, :4], x[:, 4:])
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    assert (p.argmax(axis=1) == y).mean() > 0.95


def test_entries_without_rows_get_no_probability() -> None:
    x, y = _data()
    head = EntryHead.fit(x[:, :4], x[:, 4:], y, 6)  # entries 4 and 5 have no rows
    p = head.proba(x[:, :4], x[:, 4:])
    assert p.shape == (40, 6) and p[:, 4:].max() < 1e-9


def test_two_entries_make_a_two_column_softmax() -> None:
    x, y = _data()
    keep = y < 2
    head = EntryHead.fit(x[keep, :4], x[keep, 4:], y[keep], 2)
    p = head.proba(x[keep, :4], x[keep, 4:])
    assert p.shape == (20, 2) and (p.argmax(axis=1) == y[keep]).mean() > 0.95


def test_one_entry_is_always_that_entry() -> None:
    x, _ = _data()
    head = EntryHead.fit(x[:5, :4], x[:5, 4:], np.zeros(5, dtype=np.int64), 1)
    assert head.proba(x[:3, :4], x[:3, 4:]) == pytest.approx(np.ones((3, 1)))


def test_cross_fitted_rows_come_from_heads_that_never_saw_them() -> None:
    x, y = _data(1)
    rows = np.arange(40)
    fitted = EntryHead.fit(x[:, :4], x[:, 4:], y, 4).proba(x[:, :4], x[:, 4:])
    held = cross_fitted(x[:, :4], x[:, 4:], y, 4, rows)
    assert held.shape == (40, 4)
    # a row's own head is surer of it than heads that left it out
    assert fitted[rows, y].mean() > held[rows, y].mean()
    assert (held.argmax(axis=1) == y).mean() > 0.8
