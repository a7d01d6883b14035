"""`python -m bench.data download`: resumable, checked, and one line when offline.
A local HTTP server (with Range support) stands in for files.grouplens.org."""

import hashlib
import http.server
import threading
import zipfile

import pytest

from bench.data import download as dl
from bench.data.__main__ import main as data_main
from bench.errors import BenchError

RANGES: list[int] = []  # start offsets of the Range requests the server saw


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        path = self.translate_path(self.path)
        with open(path, "rb") as f:
            data = f.read()
        start = 0
        if "Range" in self.headers:
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            RANGES.append(start)
            self.send_response(206)
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = lambda *a, **k: RangeHandler(*a, directory=str(root), **k)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def make_zip(root, name, member, payload):
    with zipfile.ZipFile(root / name, "w") as z:
        z.writestr(member, payload)
    return (root / name).read_bytes()


@pytest.mark.real_data
def test_resumed_download_is_checked_against_the_pinned_sha256(
    shared_data, server, tmp_path, monkeypatch
):
    root, url = server
    payload = (shared_data / "movielens/ml-100k/u.data").read_bytes()
    blob = make_zip(root, "ml-100k.zip", "ml-100k/u.data", payload)
    src = dl.SOURCES["ml-100k"]
    monkeypatch.setitem(
        dl.SOURCES, "ml-100k", dl.Source(f"{url}/ml-100k.zip", src.member, src.member_sha256)
    )
    dest = tmp_path / "dl"
    dest.mkdir()
    (dest / "ml-100k.zip.part").write_bytes(blob[: len(blob) // 2])  # an interrupted download
    RANGES.clear()
    path = dl.download("ml-100k", dest)
    assert [len(blob) // 2] == RANGES  # continued, not restarted
    assert path.read_bytes() == payload
    assert hashlib.sha256(payload).hexdigest() in (dest / "ml-100k/u.data.sha256").read_text()


def test_unpinned_zip_is_checked_against_the_published_md5(server, tmp_path, monkeypatch):
    root, url = server
    blob = make_zip(root, "ml-1m.zip", "ml-1m/ratings.dat", b"1::10::5::300\n")
    (root / "ml-1m.zip.md5").write_text(
        hashlib.md5(b"something else").hexdigest() + "  ml-1m.zip\n"
    )
    monkeypatch.setitem(dl.SOURCES, "ml-1m", dl.Source(f"{url}/ml-1m.zip", "ml-1m/ratings.dat"))
    with pytest.raises(BenchError, match="does not match its published md5"):
        dl.download("ml-1m", tmp_path / "a")
    (root / "ml-1m.zip.md5").write_text(hashlib.md5(blob).hexdigest() + "  ml-1m.zip\n")
    assert dl.download("ml-1m", tmp_path / "a").read_bytes() == b"1::10::5::300\n"


def test_wrong_content_is_refused_and_removed(server, tmp_path, monkeypatch):
    root, url = server
    make_zip(root, "ml-100k.zip", "ml-100k/u.data", b"1\t2\t3\t4\n")
    src = dl.SOURCES["ml-100k"]
    monkeypatch.setitem(
        dl.SOURCES, "ml-100k", dl.Source(f"{url}/ml-100k.zip", src.member, src.member_sha256)
    )
    with pytest.raises(BenchError, match=r"has sha256 .* expected 06416e59"):
        dl.download("ml-100k", tmp_path / "b")
    assert not (tmp_path / "b/ml-100k/u.data").exists()


def test_offline_and_by_hand_datasets_are_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(
        dl.SOURCES, "ml-1m", dl.Source("http://127.0.0.1:9/ml-1m.zip", "ml-1m/ratings.dat")
    )
    assert data_main(["download", "ml-1m", "--to", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot reach" in err and "download it by hand" in err
    assert data_main(["download", "diginetica", "--to", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no public direct link" in err and "train-item-views.csv" in err
