"""A wheel whose only content is the hcore binary as a script, the way ruff and uv ship theirs: pip puts
hcore-VERSION.data/scripts/hcore on PATH (bin/ of the environment). No Python code runs.
Usage: make-wheel.py BINARY VERSION PLATFORM OUTDIR   (PLATFORM e.g. manylinux_2_34_x86_64)"""
import base64, hashlib, os, sys, zipfile

binary, version, platform, outdir = sys.argv[1:5]
name = f"hcore-{version}"
tag = f"py3-none-{platform}"
files = {
    f"{name}.data/scripts/hcore": (open(binary, "rb").read(), 0o755),
    f"{name}.dist-info/METADATA": (
        f"Metadata-Version: 2.1\nName: hcore\nVersion: {version}\n"
        "Summary: Run, prune and dissect finetuned BERT classifiers on CPUs (The Heuristic Core, ACL 2024)\n"
        "License: MIT\nRequires-Python: >=3.8\n".encode(), 0o644),
    f"{name}.dist-info/WHEEL": (
        f"Wheel-Version: 1.0\nGenerator: hcore scripts/make-wheel.py\nRoot-Is-Purelib: false\nTag: {tag}\n".encode(),
        0o644),
}

def digest(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

record = "".join(f"{path},{digest(data)},{len(data)}\n" for path, (data, _) in files.items())
record += f"{name}.dist-info/RECORD,,\n"
files[f"{name}.dist-info/RECORD"] = (record.encode(), 0o644)
wheel = os.path.join(outdir, f"{name}-{tag}.whl")
with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
    for path, (data, mode) in files.items():
        info = zipfile.ZipInfo(path, date_time=(2026, 1, 1, 0, 0, 0))
        info.external_attr = (0o100000 | mode) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, data)
print("wrote", wheel)
