"""Task loaders on the real sample files and on every other supported layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from searchprime.errors import ConfigError, RecordError
from searchprime.tasks import ANSWER_SPLIT, detect_format, load_tasks


def test_mhqa_sample_unchanged(shared_data: Path) -> None:
    path = shared_data / "mhqa_sample.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    tasks = load_tasks(path)
    assert len(tasks) == 70 == len(raw)
    assert [t.id for t in tasks] == [str(r["id"]) for r in raw]
    by_id = {t.id: t for t in tasks}
    assert by_id["2109"].answers == ["Frederick V"]
    assert by_id["2109"].data_source == "2wiki"
    assert by_id["2109"].meta["extra_info"]["split"] == "dev"
    # multi-answer records are split on the literal separator
    multi = [r for r in raw if ANSWER_SPLIT in r["answer"]]
    assert len(multi) == 27
    assert by_id["1374"].answers == ["Benzodiazepines", "benzodiazepines"]
    assert by_id["1911"].answers == [
        "October 31",
        "throughout Mexico , in particular the Central and South regions",
        "the Central and South regions",
    ]
    for r in multi:
        assert by_id[str(r["id"])].answers == [a.strip() for a in r["answer"].split(ANSWER_SPLIT)]
    assert all(ANSWER_SPLIT not in a for t in tasks for a in t.answers)


def test_webwalkerqa_sample(shared_data: Path) -> None:
    path = shared_data / "webwalkerqa_sample.json"
    tasks = load_tasks(path)
    assert len(tasks) == 30
    t = next(t for t in tasks if t.id == "508")
    assert t.answers == ["王红英"]
    assert t.data_source == "webwalkerqa"
    assert t.meta["root_url"] == "https://cs.hainanu.edu.cn/"
    assert t.meta["info"]["type"] == "multi_source"
    assert {"golden_path", "source_websites", "difficulty_level"} <= set(t.meta)


def test_limit(shared_data: Path) -> None:
    assert [t.id for t in load_tasks(shared_data / "mhqa_sample.json", limit=3)] == [
        t.id for t in load_tasks(shared_data / "mhqa_sample.json")[:3]
    ]
    assert load_tasks(shared_data / "mhqa_sample.json", limit=0) == []


def test_flashrag_jsonl(tmp_path: Path) -> None:
    p = tmp_path / "nq.jsonl"
    rows = [
        {"id": "test_0", "question": "who wrote x?", "golden_answers": ["A", "B"], "metadata": {}},
        {"id": "test_1", "question": "where is y?", "golden_answers": ["C"]},
    ]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tasks = load_tasks(p)
    assert [t.answers for t in tasks] == [["A", "B"], ["C"]]
    assert tasks[0].meta == {"metadata": {}}
    assert load_tasks(p, fmt="flashrag") == tasks


def test_plain_jsonl_task_fields_and_question_answer(tmp_path: Path) -> None:
    p = tmp_path / "t.jsonl.gz"
    import gzip

    with gzip.open(p, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": 7, "question": "q1", "answers": ["a"], "meta": {"k": 1}}) + "\n")
        fh.write("\n")
        fh.write(json.dumps({"question": "q2", "answer": "b<|answer_split|>c", "hops": 2}) + "\n")
    tasks = load_tasks(p)
    assert tasks[0].id == "7" and tasks[0].meta == {"k": 1}
    assert tasks[1].answers == ["b", "c"] and tasks[1].meta == {"hops": 2}
    assert tasks[1].id == "1"  # position when the record has no id


def test_csv(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text('id,question,answers,topic\nx1,"Who, really?","[""A"", ""B""]",art\nx2,Why?,C,\n')
    tasks = load_tasks(p)
    assert tasks[0].question == "Who, really?" and tasks[0].answers == ["A", "B"]
    assert tasks[0].meta == {"topic": "art"}
    assert tasks[1].answers == ["C"]
    p2 = tmp_path / "u.csv"
    p2.write_text("question,answer\nq,a<|answer_split|>b\n")
    assert load_tasks(p2)[0].answers == ["a", "b"]


def test_csv_errors_are_located(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("question,answer\nq1,a1\n,a2\n")
    with pytest.raises(RecordError, match=r"t\.csv:3: question: expected a non-empty string"):
        load_tasks(p)
    p.write_text("query_text,answer\nq1,a1\n")
    with pytest.raises(RecordError, match=r"t\.csv:1: question"):
        load_tasks(p)


def test_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "t.parquet"
    pq.write_table(
        pa.table(
            {"id": ["a", "b"], "question": ["q1", "q2"], "golden_answers": [["x"], ["y", "z"]]}
        ),
        p,
    )
    tasks = load_tasks(p)
    assert [t.answers for t in tasks] == [["x"], ["y", "z"]]


def test_hf_dataset_from_disk(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_list(
        [
            {"id": "h1", "question": "q1", "golden_answers": ["a1", "a2"], "level": "easy"},
            {"id": "h2", "question": "q2", "golden_answers": ["b"], "level": "hard"},
        ]
    )
    ds.save_to_disk(str(tmp_path / "ds"))
    tasks = load_tasks(f"hfdisk:{tmp_path / 'ds'}")
    assert [t.id for t in tasks] == ["h1", "h2"]
    assert tasks[0].answers == ["a1", "a2"] and tasks[0].meta == {"level": "easy"}
    assert detect_format(tmp_path / "ds") == "hfdisk"
    datasets.DatasetDict({"dev": ds, "test": ds.select([1])}).save_to_disk(str(tmp_path / "dd"))
    assert [t.id for t in load_tasks(f"hfdisk:{tmp_path / 'dd'}")] == ["h2"]  # test by default
    assert len(load_tasks(f"hfdisk:{tmp_path / 'dd'}:dev")) == 2
    with pytest.raises(ConfigError, match="no split 'train'"):
        load_tasks(f"hfdisk:{tmp_path / 'dd'}:train")
    with pytest.raises(ConfigError, match="cannot load|not found"):
        load_tasks(f"hfdisk:{tmp_path / 'missing'}")


@pytest.mark.parametrize(
    ("record", "field", "problem"),
    [
        ({"id": 1, "answer": "a"}, "question", "missing"),
        ({"id": 1, "question": "", "answer": "a"}, "question", "non-empty"),
        ({"id": 1, "question": "q"}, "answer", "missing"),
        ({"id": 1, "question": "q", "answer": "  "}, "answer", "no gold answer"),
        ({"id": 1, "question": "q", "answer": {"x": 1}}, "answer", "expected a string"),
        ({"id": 1, "question": "q", "answers": ["a", None]}, "answers.1", "expected a string"),
        ({"id": [1], "question": "q", "answer": "a"}, "id", "expected a string or integer"),
        ({"id": 1, "question": "q", "answer": "a", "data_source": 3}, "data_source", "string"),
    ],
)
def test_bad_records_name_file_line_field(
    tmp_path: Path, record: dict, field: str, problem: str
) -> None:
    p = tmp_path / "bad.json"
    good = {"id": 0, "question": "fine?", "answer": "yes"}
    p.write_text(json.dumps([good, record], indent=1))
    with pytest.raises(RecordError) as info:
        load_tasks(p)
    err = info.value
    assert err.path == str(p) and err.field == field and problem in err.problem
    # the second record starts on the line after the first record's closing brace
    first_end = json.dumps([good, record], indent=1).splitlines().index(" },") + 1
    assert err.line == first_end + 1


def test_broken_json_and_duplicates(tmp_path: Path) -> None:
    p = tmp_path / "bad.json"
    p.write_text('[\n {"id": 1, "question": "q", "answer": "a"},\n {"id": 2, "question": }\n]')
    with pytest.raises(RecordError, match=r"bad\.json:3: <json>: not valid JSON"):
        load_tasks(p)
    p.write_text(
        '[{"id": 1, "question": "q", "answer": "a"}, {"id": "1", "question": "r", "answer": "b"}]'
    )
    with pytest.raises(RecordError, match="duplicate id '1'"):
        load_tasks(p)
    p.write_text('{"a": 1')
    with pytest.raises(RecordError, match="not valid JSON"):
        load_tasks(p)
    p.write_text("[]")
    assert load_tasks(p) == []


def test_jsonl_error_located(tmp_path: Path) -> None:
    p = tmp_path / "t.jsonl"
    p.write_text('{"question": "q", "answer": "a"}\n{"question": "q2"}\n')
    with pytest.raises(RecordError, match=r"t\.jsonl:2: answer: missing"):
        load_tasks(p)


def test_format_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot tell the task format"):
        load_tasks(tmp_path / "tasks.txt")
    with pytest.raises(ConfigError, match="not found"):
        load_tasks(tmp_path / "nope.json")
    with pytest.raises(ConfigError, match="unknown task format"):
        load_tasks(tmp_path / "nope.json", fmt="xml")
