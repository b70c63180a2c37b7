"""What the server agrees to read: local-path confinement (traversal, symlinks, prefix tricks, special files),
the upload gate (pickle refused with a reason, size cap, .safetensors only), and a scan proving that no code
in explorer/, ui/, pages/ or app.py unpickles anything."""
from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from explorer.safe_paths import MAX_FOLDER_ENTRIES, allowed_dirs, confine

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def tree(tmp_path):
    """tmp/data (allowed) with a model file, a model folder and links; tmp/data2 and tmp/secret (not allowed)."""
    data, data2, secret = tmp_path / "data", tmp_path / "data2", tmp_path / "secret"
    for d in (data, data2, secret, data / "model", data / "sub"):
        d.mkdir()
    for f in (data / "w.safetensors", data / "model" / "model.safetensors", data2 / "w.safetensors",
              secret / "s.safetensors"):
        save_file({"w": torch.zeros(2, 2)}, str(f))
    (secret / "passwd").write_text("root:x:0:0")
    return tmp_path, (data.resolve(),)


def test_allowed_dirs_parsing(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    assert allowed_dirs(None) == () and allowed_dirs("") == () and allowed_dirs(f" {os.pathsep} ") == ()
    assert allowed_dirs(f"{a}{os.pathsep}{b}") == (a.resolve(), b.resolve())
    link = tmp_path / "link"
    link.symlink_to(a)
    assert allowed_dirs(str(link)) == (a.resolve(),)  # the real folder is what paths are compared with
    with pytest.raises(ValueError, match="'models' must be an absolute path"):
        allowed_dirs("models")
    with pytest.raises(ValueError, match="is not an existing folder"):
        allowed_dirs(str(tmp_path / "missing"))


def test_off_without_allowed_folders(tree):
    root, _ = tree
    with pytest.raises(ValueError, match="local paths are off on this server.*EXPLORER_LOCAL_DIRS"):
        confine(str(root / "data" / "w.safetensors"), ())


def test_inside_is_allowed(tree):
    root, allowed = tree
    data = allowed[0]
    assert confine(str(root / "data" / "w.safetensors"), allowed) == data / "w.safetensors"
    assert confine(str(root / "data" / "model"), allowed) == data / "model"
    assert confine(str(root / "data"), allowed) == data
    assert confine("model/model.safetensors", allowed) == data / "model" / "model.safetensors"  # relative: first
    assert confine(f"  {root / 'data' / 'sub' / '..' / 'w.safetensors'}  ", allowed) == data / "w.safetensors"


@pytest.mark.parametrize("path", [
    "{root}/data/../secret/s.safetensors",          # traversal in an absolute path
    "../secret/s.safetensors",                      # traversal in a relative path
    "sub/../../secret/passwd",
    "{root}/secret/passwd",                         # absolute path elsewhere
    "/etc/passwd",
    "{root}/data2/w.safetensors",                   # prefix trick: /data2 is not inside /data
    "{root}/data2",
    "{root}/data/../data2/w.safetensors",
    "~/.ssh/id_rsa",                                # no home expansion: a relative name under data/ that is missing
])
def test_outside_is_refused(tree, path):
    root, allowed = tree
    with pytest.raises(ValueError, match="outside the folders this server allows|does not exist"):
        confine(path.format(root=root), allowed)


def test_prefix_trick_message_names_allowed_folders(tree):
    root, allowed = tree
    with pytest.raises(ValueError, match=rf"is outside the folders this server allows: \['{allowed[0]}'\]"):
        confine(str(root / "data2" / "w.safetensors"), allowed)


def test_symlinks_out_are_refused_and_in_are_allowed(tree):
    root, allowed = tree
    data = allowed[0]
    (data / "out.safetensors").symlink_to(root / "secret" / "s.safetensors")
    (data / "outdir").symlink_to(root / "secret")
    (data / "in.safetensors").symlink_to(data / "w.safetensors")
    for name in ["out.safetensors", "outdir", "outdir/s.safetensors", "outdir/passwd"]:
        with pytest.raises(ValueError, match="outside the folders this server allows"):
            confine(str(data / name), allowed)
    assert confine(str(data / "in.safetensors"), allowed) == data / "w.safetensors"


def test_folder_with_a_shard_linking_out_is_refused(tree):
    root, allowed = tree
    model = allowed[0] / "model"
    (model / "model-00002-of-00002.safetensors").symlink_to(root / "secret" / "s.safetensors")
    with pytest.raises(ValueError, match="'model-00002-of-00002.safetensors' in .* links outside"):
        confine(str(model), allowed)
    (model / "model-00002-of-00002.safetensors").unlink()
    (model / "model.safetensors.index.json").symlink_to(root / "secret" / "passwd")
    with pytest.raises(ValueError, match="'model.safetensors.index.json' in .* links outside"):
        confine(str(model), allowed)
    (model / "model.safetensors.index.json").unlink()
    (model / "model.safetensors.index.json").write_text('{"weight_map": {}}')
    (model / "evil.safetensors").symlink_to(root / "secret" / "s.safetensors")
    with pytest.raises(ValueError, match="'evil.safetensors' in .* links outside"):  # index named directly
        confine(str(model / "model.safetensors.index.json"), allowed)
    (model / "notes.txt").symlink_to(root / "secret" / "passwd")  # never opened by the loader: ignored
    (model / "evil.safetensors").unlink()
    assert confine(str(model), allowed) == model


def test_odd_inputs_are_refused_cleanly(tree):
    root, allowed = tree
    data = allowed[0]
    (data / "loop_a").symlink_to(data / "loop_b")
    (data / "loop_b").symlink_to(data / "loop_a")
    os.mkfifo(data / "pipe.safetensors")
    cases = {
        str(data / "loop_a"): "cannot be resolved|does not exist",
        str(data / "pipe.safetensors"): "is not a regular file or folder",   # reading a FIFO would block
        "w.safetensors\x00.png": "NUL character",
        "a/" * 3000: "longer than 4096 characters",
        str(data / "missing.safetensors"): "does not exist",
        "": "",  # the allowed folder itself
    }
    for text, match in cases.items():
        if not match:
            assert confine(text, allowed) == data
            continue
        with pytest.raises(ValueError, match=match):
            confine(text, allowed)


def test_huge_folder_is_refused(tmp_path):
    (tmp_path / "big").mkdir()
    for i in range(MAX_FOLDER_ENTRIES + 1):
        (tmp_path / "big" / f"{i}").touch()
    with pytest.raises(ValueError, match=f"more than {MAX_FOLDER_ENTRIES} entries"):
        confine(str(tmp_path / "big"), (tmp_path.resolve(),))


def test_app_reads_allowed_folders_from_the_environment(tree, monkeypatch):
    from ui import sources
    root, allowed = tree
    monkeypatch.delenv(sources.LOCAL_DIRS_ENV, raising=False)
    assert sources.local_dirs() == ()
    with pytest.raises(ValueError, match="local paths are off"):
        sources.confine(str(root / "data" / "w.safetensors"))
    monkeypatch.setenv(sources.LOCAL_DIRS_ENV, str(root / "data"))
    assert sources.confine(str(root / "data" / "w.safetensors")) == allowed[0] / "w.safetensors"
    with pytest.raises(ValueError, match="outside"):
        sources.confine(str(root / "data2" / "w.safetensors"))
    monkeypatch.setenv(sources.LOCAL_DIRS_ENV, "relative/dir")  # misconfigured: off, with a log line
    assert sources.local_dirs() == ()


# --- the upload gate --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "model.PTH", "last.ckpt", "x.pkl", "y.pickle"])
def test_pickle_uploads_refused_with_a_reason(name):
    from ui.sources import upload_source
    with pytest.raises(ValueError, match=r"pickle checkpoints can run arbitrary code.*Convert to \.safetensors"):
        upload_source(name, b"\x80\x02whatever")


def test_upload_type_and_size(monkeypatch):
    from ui import sources
    with pytest.raises(ValueError, match="only .safetensors files are accepted"):
        sources.upload_source("model.gguf", b"GGUF")
    monkeypatch.setattr(sources, "MAX_UPLOAD_MB", 1)
    with pytest.raises(ValueError, match="is 2 MB; the limit on this server is 1 MB"):
        sources.upload_source("big.safetensors", bytes(2 * 2**20))
    src = sources.upload_source("ok.SafeTensors", bytes(2**20))
    assert src.key.startswith("upload:") and len(src.key) == len("upload:") + 64


def test_streamlit_upload_cap_matches_the_app_default():
    import tomllib
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == 200
    assert config["server"]["enableXsrfProtection"] is True
    assert config["server"]["fileWatcherType"] == "none" and config["server"]["headless"] is True


# --- nothing unpickles ------------------------------------------------------------------------------------

UNPICKLING_MODULES = {"pickle", "_pickle", "cPickle", "cloudpickle", "dill", "joblib", "shelve", "marshal"}
UNPICKLING_CALLS = {"torch.load", "torch.jit.load", "torch.serialization.load", "pd.read_pickle",
                    "pandas.read_pickle", "np.load", "numpy.load"}


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def unpickling_sites(source: str) -> list[str]:
    """Imports of pickle-like modules and calls of loaders that unpickle, found in code (not in text)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in UNPICKLING_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in UNPICKLING_MODULES or (
                    node.module in ("torch", "torch.serialization") and any(a.name == "load" for a in node.names)):
                found.append(node.module)
        elif isinstance(node, ast.Call) and _dotted(node.func) in UNPICKLING_CALLS:
            found.append(_dotted(node.func))
    return found


def test_the_scan_finds_unpickling():
    snippet = "import pickle\nfrom torch import load\nimport torch\nx = torch.load('m.pt')\ny = np.load('a.npy')\n"
    assert unpickling_sites(snippet) == ["pickle", "torch", "torch.load", "np.load"]
    assert unpickling_sites("'''torch.load is refused'''\n# import pickle\n") == []


def test_no_code_unpickles():
    files = [REPO / "app.py"] + [p for d in ("explorer", "ui", "pages") for p in sorted((REPO / d).rglob("*.py"))]
    assert len(files) > 20
    offenders = {str(p.relative_to(REPO)): s for p in files if (s := unpickling_sites(p.read_text()))}
    assert offenders == {}, f"code that can unpickle: {offenders}"
