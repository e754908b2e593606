"""Small Hugging Face `datasets` folders for the Arrow reader's tests (Tests/Fixtures/reference/datasets), cut
from the reference repository's published ones (../shared/reference/data/datasets, princeton-nlp/Heuristic-Core,
MIT) with `datasets` itself, so they are written exactly as `save_to_disk` writes them:
  paws-qqp/                      its first 200 rows (one dataset: dataset_info.json + data-00000-of-00001.arrow)
  hans-cases/<case>/validation/  the first 100 rows of each of its two cases (a folder of dataset dicts;
                                 dataset_dict.json lists only the split kept)
Run with the peers' venv:  /tmp/peers/bin/pip install datasets && /tmp/peers/bin/python scripts/make-arrow-fixtures.py
"""
import os, sys
from datasets import load_from_disk, DatasetDict

src = sys.argv[1] if len(sys.argv) > 1 else "../shared/reference/data/datasets"
out = "Tests/Fixtures/reference/datasets"
load_from_disk(f"{src}/paws-qqp").select(range(200)).save_to_disk(f"{out}/paws-qqp")
for case in sorted(os.listdir(f"{src}/hans-cases")):
    d = load_from_disk(f"{src}/hans-cases/{case}")
    DatasetDict({"validation": d["validation"].select(range(100))}).save_to_disk(f"{out}/hans-cases/{case}")
print("wrote", out)

# Column types and nulls the `datasets` folders above do not use, in both IPC formats (Tests/Fixtures/arrow):
# int8/int32/uint16/int64 with nulls, a bool, a large_string, a null column, two record batches.
import pyarrow as pa
table = pa.table({
    "i8": pa.array([-128, None, 127], pa.int8()), "i32": pa.array([1, -2, None], pa.int32()),
    "u16": pa.array([65535, 0, 7], pa.uint16()), "i64": pa.array([None, -(2**62), 2**62], pa.int64()),
    "flag": pa.array([True, None, False]), "big": pa.array(["a", None, "héllo"], pa.large_string()),
    "nothing": pa.nulls(3), "text": pa.array(["x", "", None]),
})
os.makedirs("Tests/Fixtures/arrow", exist_ok=True)
batches = table.to_batches(max_chunksize=2)
with pa.ipc.new_file("Tests/Fixtures/arrow/types-file.arrow", table.schema) as w:
    for b in batches: w.write_batch(b)
with pa.ipc.new_stream("Tests/Fixtures/arrow/types-stream.arrow", table.schema) as w:
    for b in batches: w.write_batch(b)
print("wrote Tests/Fixtures/arrow")

# Cheap columns: 400 null columns beside one boolean column of 8,000 rows. The file is small, the table it
# describes is 3.2 million cells (null columns and their rows cost the file nothing): a reader must bound what
# it builds by the file's size, not by the record batch's body.
wide = pa.table({"flag": pa.array([i % 2 == 0 for i in range(8000)]), **{f"n{i}": pa.nulls(8000) for i in range(400)}})
with pa.ipc.new_stream("Tests/Fixtures/arrow/wide-null-columns.arrow", wide.schema) as w:
    w.write_table(wide)
print("wrote Tests/Fixtures/arrow/wide-null-columns.arrow")
