#!/usr/bin/env bash
# Install the Lucene baseline for bench/retrieval.py: a Java runtime (apt) and pyserini in a
# venv of its own (.venv-bench), so its heavy, old pins never touch .venv.
#
#   bash bench/install_lucene.sh        # or: make bench-deps
#
# pyserini 0.22.1 is the last release on Java 11+ (0.23+ needs Java 21, which Debian bookworm
# does not ship). Its full dependency list (nmslib, spacy, lightgbm, onnxruntime) does not build
# on current Pythons, and none of it is used for BM25: pyserini is installed --no-deps with what
# `pyserini.index.lucene` and `LuceneSearcher` import (pyserini.search imports its faiss module
# too, hence torch, transformers < 5 and faiss-cpu). torch is pinned to the CPU build, like the
# Makefile does, so no CUDA wheels are pulled. Idempotent; safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv-bench}
PYTHON=${PYTHON:-python3}

if ! command -v java >/dev/null 2>&1; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends default-jre-headless
fi
java -version 2>&1 | head -1

test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip install -q"
$PIP --upgrade pip
$PIP torch==2.13.0
$PIP torch==2.13.0 pyjnius numpy pandas scipy scikit-learn tqdm pyyaml sentencepiece \
  "transformers>=4.30,<5" faiss-cpu onnxruntime
$PIP --no-deps pyserini==0.22.1
"$VENV/bin/python" -c "import torch; assert torch.version.cuda is None, 'CUDA torch'"
"$VENV/bin/python" -c "from pyserini.search.lucene import LuceneSearcher; print('pyserini ok')"
