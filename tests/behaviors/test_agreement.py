"""Agreement of labels with teacher ground truth (Turn.policy_meta['behaviors'])."""

from __future__ import annotations

import pytest

from searchprime.behaviors.agreement import agreement, agreement_file, teacher_truth
from searchprime.errors import RecordError
from searchprime.records import BEHAVIORS, write_jsonl

IV, AE, AS, ER = BEHAVIORS


def test_precision_recall_f1(tmp_path, traj_factory) -> None:
    trajs = [
        traj_factory("1", truth={IV, AS}, shown={IV, AS}),  # IV tp, AS tp
        traj_factory("2", truth={IV}, shown={AS}),  # IV fn, AS fp
        traj_factory("3", truth=set(), shown={IV}),  # IV fp
        traj_factory("4", truth={IV, ER}, shown={IV}, unknown={ER}),  # IV tp, ER fn + unknown
        traj_factory("5", truth={IV}, labelled=False),
    ]
    assert teacher_truth(trajs[0]) == {IV, AS}
    report = agreement(trajs)
    assert (report.n, report.unlabelled, report.annotator) == (4, 1, "test")
    iv = report.behaviors[IV]
    assert (iv.tp, iv.fp, iv.fn, iv.tn, iv.support) == (2, 1, 1, 0, 3)
    assert iv.precision == pytest.approx(2 / 3) and iv.recall == pytest.approx(2 / 3)
    assert iv.f1 == pytest.approx(2 / 3)
    as_ = report.behaviors[AS]
    assert (as_.tp, as_.fp, as_.fn, as_.tn) == (1, 1, 0, 2)
    assert as_.f1 == pytest.approx(2 * 0.5 * 1 / 1.5)
    er = report.behaviors[ER]
    assert (er.fn, er.unknown, er.recall, er.precision, er.f1) == (1, 1, 0.0, None, 0.0)
    ae = report.behaviors[AE]
    assert (ae.tn, ae.f1) == (4, None)  # never shown, never predicted: undefined

    path = tmp_path / "l.jsonl"
    write_jsonl(path, trajs)
    assert agreement_file(path).behaviors[IV].tp == 2


def test_file_without_teacher_log_is_an_error(tmp_path, traj_factory) -> None:
    path = tmp_path / "plain.jsonl"
    write_jsonl(path, [traj_factory("1", shown={IV})])
    with pytest.raises(RecordError, match="teacher ground truth"):
        agreement_file(path)
