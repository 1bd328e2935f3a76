"""Requests that cannot be served get a 4xx or a 500 that says what to do, never a traceback
in the log for a client's mistake, and never internal error text in the body."""

from __future__ import annotations

import logging
from pathlib import Path

import asyncpg
import pytest

from service import Application, DurableObject, Response
from tests.support import serve

NUL_NAME = "Bad object name: A Durable Object name cannot contain the NUL character (U+0000)."


class Page(DurableObject):
    async def fetch(self, request):
        if "raise" in request.query:
            raise RuntimeError("secret internals 42")
        if "write" in request.query:
            self.ctx.storage.kv.put("k", request.query["write"])
        return Response(f"object {self.ctx.id.name}")


@pytest.fixture
def static(tmp_path: Path) -> Path:
    (tmp_path / "index.html").write_text("<p>home</p>")
    return tmp_path


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        ("/index.html%00.txt", 404, "Not found: no object binding matches"),
        ("/" + "a" * 256, 404, "Not found: no object binding matches"),
        ("/" + "a/" * 2100, 404, "Not found: no object binding matches"),
        ("/page/a%00b", 400, NUL_NAME),
        ("/page/" + "n" * 300, 200, "object " + "n" * 300),
    ],
    ids=[
        "nul-in-a-file-name",
        "name-over-255-bytes",
        "path-over-4096-bytes",
        "nul-in-an-object-name",
        "long-object-name",
    ],
)
async def test_paths_no_file_can_have_are_not_errors(
    database_url, static, caplog, path, status, body
) -> None:
    async with serve(database_url, Application({"PAGE": Page}, static_dir=static)) as node:
        caplog.clear()
        response = await node.client.get(path)
        assert response.status == status
        assert (await response.text()).startswith(body)
        assert errors_logged(caplog) == []
        assert len(caplog.records) <= 1
        assert (await node.client.get("/")).status == 200


async def test_a_nul_in_an_object_name_is_a_400_without_a_static_folder(database_url, caplog):
    async with serve(database_url, Application({"PAGE": Page})) as node:
        response = await node.client.get("/page/a%00b")
        assert (response.status, await response.text()) == (400, NUL_NAME)
        assert errors_logged(caplog) == []


async def test_a_raising_fetch_answers_500_without_its_exception_text(database_url, caplog):
    async with serve(database_url, Application({"PAGE": Page})) as node:
        response = await node.client.get("/page/p?raise=1")
        assert response.status == 500
        text = await response.text()
        assert "secret" not in text and "RuntimeError" not in text
        assert "fetch() raised an exception" in text
        # The details are in the log, with the traceback.
        (record,) = [r for r in caplog.records if r.exc_info]
        assert "secret internals 42" in str(record.exc_info[1])


async def test_a_key_error_in_the_application_fetch_is_no_404_with_its_text(database_url):
    async def fetch(request, env):
        raise KeyError("internal-key")

    async with serve(database_url, Application({"PAGE": Page}, fetch=fetch)) as node:
        response = await node.client.get("/anything")
        assert response.status == 500
        assert "internal-key" not in await response.text()


async def test_a_refused_commit_answers_503_without_the_databases_text(database_url):
    connection = await asyncpg.connect(database_url)
    await connection.execute(
        """
        CREATE FUNCTION refuse_write() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.type = 'storage_put' THEN RAISE EXCEPTION 'secret-detail of the schema'; END IF;
          RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_write BEFORE INSERT ON events
          FOR EACH ROW EXECUTE FUNCTION refuse_write();
        """
    )
    try:
        async with serve(database_url, Application({"PAGE": Page})) as node:
            response = await node.client.get("/page/w?write=v")
            assert response.status == 503
            text = await response.text()
            assert text.startswith("Service unavailable: ")
            assert "could not commit" in text
            assert "secret-detail" not in text
    finally:
        await connection.close()
