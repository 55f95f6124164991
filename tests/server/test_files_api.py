"""Files through the official SDK: upload, paginated list, retrieve, content, delete."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from .conftest import MAX_UPLOAD, Server

LINE = (
    b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
)


def test_upload_list_retrieve_content_delete(server: Server) -> None:
    client = server.client()
    uploaded = [
        client.files.create(file=(f"part-{i}.jsonl", LINE * (i + 1)), purpose="fine-tune")
        for i in range(3)
    ]
    first = uploaded[0]
    assert first.id.startswith("file-") and first.object == "file"
    assert first.bytes == len(LINE) and first.filename == "part-0.jsonl"
    assert first.purpose == "fine-tune" and first.status == "processed"
    assert first.status_details is None

    page = client.files.list(limit=2, purpose="fine-tune")
    assert [f.id for f in page.data] == [uploaded[2].id, uploaded[1].id]  # newest first
    assert page.has_more is True
    everything = [f.id for f in client.files.list(limit=2, order="asc", purpose="fine-tune")]
    assert everything[-3:] == [f.id for f in uploaded]  # the SDK followed the cursor

    assert client.files.retrieve(first.id).filename == "part-0.jsonl"
    assert client.files.content(uploaded[1].id).read() == LINE * 2

    stored = list((server.data_dir / "files").glob(f"{first.id}*"))
    assert [p.suffix for p in stored] == [".jsonl"]
    deleted = client.files.delete(first.id)
    assert deleted.id == first.id and deleted.deleted is True
    assert not any(p.exists() for p in stored)
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(first.id)


def test_an_upload_over_the_limit_is_refused_with_413(server: Server, tmp_path: Path) -> None:
    big = tmp_path / "big.jsonl"
    big.write_bytes(LINE * (MAX_UPLOAD // len(LINE) + 10))
    with pytest.raises(openai.APIStatusError) as caught:
        server.client().files.create(file=big, purpose="fine-tune")
    assert caught.value.status_code == 413
    assert caught.value.code == "file_too_large"
    leftovers = [p for p in (server.data_dir / "files").iterdir() if p.name.startswith(".upload")]
    assert leftovers == []


def test_a_chunked_upload_is_cut_off_at_the_limit(server: Server) -> None:
    def body():  # type: ignore[no-untyped-def]
        yield b'--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.jsonl"\r\n\r\n'
        for _ in range(MAX_UPLOAD // 10_000 + 5):
            yield b"x" * 10_000
        yield b"\r\n--b--\r\n"

    with server.http() as http:
        response = http.post(
            "/files", content=body(), headers={"Content-Type": "multipart/form-data; boundary=b"}
        )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "file_too_large"


def test_bad_uploads_get_400_and_the_server_keeps_serving(server: Server) -> None:
    with server.http() as http:
        no_purpose = http.post("/files", files={"file": ("a.jsonl", LINE)})
        bad_purpose = http.post("/files", files={"file": ("a.jsonl", LINE)}, data={"purpose": "x"})
        not_multipart = http.post("/files", json={"file": "a"})
        garbage = http.post(
            "/files",
            content=b"--zz\r\nnonsense",
            headers={"Content-Type": "multipart/form-data; boundary=b"},
        )
        assert http.get("/files").status_code == 200
    assert no_purpose.status_code == 400 and no_purpose.json()["error"]["param"] == "purpose"
    assert bad_purpose.status_code == 400 and bad_purpose.json()["error"]["param"] == "purpose"
    assert not_multipart.status_code == 400 and not_multipart.json()["error"]["param"] == "file"
    assert garbage.status_code == 400
