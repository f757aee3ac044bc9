"""Several phones at once: every stream completes, the queue is fair, the unit stays responsive."""

import threading

import pytest

from tests.conftest import read_sse

pytestmark = pytest.mark.engine


def test_eight_concurrent_streams_all_complete_while_healthz_answers(live_unit):
    results, health, streaming = {}, [], threading.Event()
    finished = threading.Event()

    def phone(index):
        with live_unit.client(device=10 + index) as http:
            conversation = http.post("/api/conversations", json={}).json()
            with http.stream(
                "POST",
                f"/api/conversations/{conversation['id']}/messages",
                json={"content": f"Phone {index}: name a colour.", "params": {"max_tokens": 24}},
            ) as r:
                streaming.set()
                results[index] = (r.status_code, read_sse(r))

    def probe():
        with live_unit.client() as http:
            streaming.wait(60)
            while not finished.wait(0.05):
                health.append(http.get("/healthz").status_code)

    prober = threading.Thread(target=probe)
    prober.start()
    phones = [threading.Thread(target=phone, args=(i,)) for i in range(8)]
    for thread in phones:
        thread.start()
    for thread in phones:
        thread.join(300)
    finished.set()
    prober.join(30)

    assert sorted(results) == list(range(8))
    for status, events in results.values():
        assert status == 200
        assert events[-1]["type"] == "done"
        assert events[-1]["message"]["content"] == "".join(e["text"] for e in events if e["type"] == "delta")
    # /healthz kept answering while the engine was busy with the queue.
    assert len(health) >= 5 and set(health) == {200}


def test_openai_clients_can_stream_concurrently_with_phones(live_unit):
    outcomes = []

    def api_client(index):
        with (
            live_unit.client(device=20 + index) as http,
            http.stream(
                "POST",
                "/v1/chat/completions",
                json={"messages": [{"role": "user", "content": f"Say {index}."}], "stream": True, "max_tokens": 12},
            ) as response,
        ):
            outcomes.append(read_sse(response)[-1])

    threads = [threading.Thread(target=api_client, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert outcomes == ["[DONE]"] * 4
