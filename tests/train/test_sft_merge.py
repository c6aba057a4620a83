"""merge_turn_rows: one-turn export rows fold back into whole segments only where lossless."""

from __future__ import annotations

from searchprime.train.sft_data import merge_turn_rows


def _m(role: str, content: str) -> dict:
    return {"role": role, "content": content}


SYSTEM = [_m("system", "sys"), _m("user", "Q?")]
T0 = _m("assistant", "<think>a</think><search>x</search>")
OBS0 = _m("user", "<information>doc</information>")
T1 = _m("assistant", "<think>b</think><answer>y</answer>")


def _segment_rows() -> list[dict]:
    return [
        {"prompt": SYSTEM, "completion": [T0]},
        {"prompt": [*SYSTEM, T0, OBS0], "completion": [T1]},
    ]


def chatml(msgs: list[dict]) -> str:
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in msgs)


def qwen3_like(msgs: list[dict]) -> str:
    """Drops the thoughts of every assistant message but the last, as Qwen3's template does."""
    last = max(i for i, m in enumerate(msgs) if m["role"] == "assistant")
    out = []
    for i, m in enumerate(msgs):
        text = m["content"]
        if m["role"] == "assistant" and i != last:
            text = text.split("</think>", 1)[-1]
        out.append(f"<|im_start|>{m['role']}\n{text}<|im_end|>\n")
    return "".join(out)


def test_a_chain_folds_into_one_segment_row() -> None:
    other = {"prompt": [_m("user", "o?")], "completion": [_m("assistant", "<answer>z</answer>")]}
    rows, merged = merge_turn_rows([*_segment_rows(), other], chatml)
    assert merged == 1
    assert rows == [{"prompt": SYSTEM, "completion": [T0, OBS0, T1]}, other]


def test_a_template_that_drops_thoughts_keeps_the_one_turn_rows() -> None:
    rows, merged = merge_turn_rows(_segment_rows(), qwen3_like)
    assert merged == 0 and rows == _segment_rows()


def test_rows_of_different_segments_are_not_chained() -> None:
    a = {"prompt": SYSTEM, "completion": [T0]}
    b = {"prompt": [_m("system", "sys"), _m("user", "other?"), T0, OBS0], "completion": [T1]}
    rows, merged = merge_turn_rows([a, b], chatml)
    assert merged == 0 and rows == [a, b]
    messages = [{"messages": [*SYSTEM, T0]}]  # other layouts pass through
    assert merge_turn_rows(messages, chatml) == (messages, 0)


def test_only_rows_of_one_exported_segment_are_chained() -> None:
    rows = _segment_rows()
    assert merge_turn_rows(rows, chatml, [None, None]) == (rows, 0)  # --shape turn rows
    assert merge_turn_rows(rows, chatml, ["a", "b"]) == (rows, 0)
    assert merge_turn_rows(rows, chatml, ["s", "s"])[1] == 1


def test_a_chain_that_would_not_fit_stays_one_turn_rows() -> None:
    rows = _segment_rows()
    assert merge_turn_rows(rows, chatml, fits=lambda row: len(row["completion"]) < 3) == (rows, 0)
