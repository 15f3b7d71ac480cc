"""The gateway simulator answers exactly as the published contract says.

Requests are sent the way the documented curl does: a raw POST with the three headers.
"""

import io
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from gallery.simulator import RESULT_PATH, SUBMIT_PATH
from tests.simulator_fixtures import DOCUMENTED_BODY, SIMULATOR_TEST_KEY

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


def headers(key=SIMULATOR_TEST_KEY):
    sent = {"Content-Type": "application/json", "Cache-Control": "no-cache"}
    if key is not None:
        sent["Ocp-Apim-Subscription-Key"] = key
    return sent


def submit(simulator, body, key=SIMULATOR_TEST_KEY):
    return httpx.post(
        simulator.base_url + "/gpt-image-1-5-api-request", json=body, headers=headers(key)
    )


def poll(simulator, request_id, key=SIMULATOR_TEST_KEY):
    return httpx.post(
        simulator.base_url + "/gpt-image-1-5-api-request-result",
        json={"request_id": request_id},
        headers=headers(key),
    )


def poll_until_finished(simulator, request_id, timeout=10):
    answers = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = poll(simulator, request_id)
        assert response.status_code == 200
        answers.append(response.json())
        if answers[-1]["status"] in ("COMPLETED", "FAILED"):
            return answers
        time.sleep(0.05)
    raise AssertionError(f"still {answers[-1]['status']} after {timeout}s")


def download(url):
    response = httpx.get(url)
    assert response.status_code == 200
    return response


def test_it_queues_the_documented_example(simulator):
    response = submit(simulator, DOCUMENTED_BODY)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert answer["status"] == "IN_QUEUE"
    assert answer["response_url"] == simulator.base_url + "/gpt-image-1-5-api-request-result"
    assert isinstance(answer["request_id"], str) and len(answer["request_id"]) >= 16
    assert not UUID.match(answer["request_id"])  # opaque: callers must not expect a UUID
    assert simulator.submissions == 1
    assert simulator.submitted_prompts == [DOCUMENTED_BODY["prompt"]]
    assert simulator.received == [DOCUMENTED_BODY]


def test_request_ids_are_unique(simulator):
    ids = {submit(simulator, {"prompt": "a cat"}).json()["request_id"] for _ in range(5)}
    assert len(ids) == 5


def test_polling_walks_from_queue_through_progress_to_completed(make_simulator):
    simulator = make_simulator(queue_seconds=0.5)  # room for the first poll on a busy machine
    request_id = submit(simulator, DOCUMENTED_BODY).json()["request_id"]

    answers = poll_until_finished(simulator, request_id)

    statuses = [answer["status"] for answer in answers]
    assert statuses[0] == "IN_QUEUE"
    assert "IN_PROGRESS" in statuses
    assert statuses[-1] == "COMPLETED"
    assert all(answer["request_id"] == request_id for answer in answers)
    queued = [answer for answer in answers if answer["status"] == "IN_QUEUE"]
    assert all(set(answer) == {"status", "request_id"} for answer in queued)
    in_progress = [answer for answer in answers if answer["status"] == "IN_PROGRESS"]
    for answer in in_progress:
        assert isinstance(answer["queue_position"], int) and answer["queue_position"] >= 0
        assert isinstance(answer["estimated_wait_minutes"], float)
    positions = [answer["queue_position"] for answer in in_progress]
    assert positions == sorted(positions, reverse=True)  # it counts down

    completed = answers[-1]
    assert set(completed) == {"status", "request_id", "images", "metadata"}
    metadata = completed["metadata"]
    assert metadata["prompt"] == DOCUMENTED_BODY["prompt"]
    assert metadata["image_size"] == "1024x1024"
    assert metadata["quality"] == "high"
    assert metadata["output_format"] == "png"
    assert isinstance(metadata["processing_time_ms"], int)
    [image] = completed["images"]
    assert image["width"] == 1024 and image["height"] == 1024
    assert image["content_type"] == "image/png"
    assert image["url"].startswith(simulator.root_url + "/images/")

    response = download(image["url"])
    assert response.headers["content-type"] == "image/png"
    assert int(response.headers["content-length"]) == image["size_bytes"] == len(response.content)
    picture = Image.open(io.BytesIO(response.content))
    assert (picture.format, picture.size) == ("PNG", (1024, 1024))


def test_a_finished_answer_stays_the_same(simulator):
    request_id = submit(simulator, {"prompt": "a teapot"}).json()["request_id"]
    first = poll_until_finished(simulator, request_id)[-1]
    assert poll(simulator, request_id).json() == first


@pytest.mark.parametrize(
    ("output_format", "background", "pillow_format", "size"),
    [
        ("png", "transparent", "PNG", "1024x1536"),
        ("webp", "transparent", "WEBP", "1536x1024"),
        ("jpeg", "opaque", "JPEG", "1536x1024"),
        ("webp", "auto", "WEBP", "1024x1024"),
    ],
)
def test_images_come_in_the_asked_size_format_count_and_transparency(
    simulator, output_format, background, pillow_format, size
):
    body = {
        "prompt": "a lighthouse at dusk",
        "image_size": size,
        "background": background,
        "num_images": 3,
        "output_format": output_format,
    }
    request_id = submit(simulator, body).json()["request_id"]
    completed = poll_until_finished(simulator, request_id)[-1]

    assert len(completed["images"]) == 3
    width, height = (int(n) for n in size.split("x"))
    contents = []
    for image in completed["images"]:
        assert image["content_type"] == f"image/{output_format}"
        response = download(image["url"])
        assert response.headers["content-type"] == image["content_type"]
        assert len(response.content) == image["size_bytes"]
        picture = Image.open(io.BytesIO(response.content))
        assert picture.format == pillow_format
        assert picture.size == (width, height) == (image["width"], image["height"])
        if background == "transparent":
            assert picture.mode == "RGBA"
            assert picture.getchannel("A").getextrema()[0] < 255
        else:
            assert "A" not in picture.getbands()
        contents.append(response.content)
    assert len(set(contents)) == 3  # each image of a request is different


def test_images_drawn_in_separate_processes_are_the_same_images(make_simulator):
    # The stand-alone simulator (make run) draws in processes of its own.
    in_processes = make_simulator(drawing_processes=1)
    in_threads = make_simulator()
    body = {"prompt": "a red kite", "num_images": 2, "output_format": "webp"}
    for simulator in (in_processes, in_threads):
        request_id = submit(simulator, body).json()["request_id"]
        completed = poll_until_finished(simulator, request_id)[-1]
        pictures = [Image.open(io.BytesIO(download(i["url"]).content)) for i in completed["images"]]
        assert [(p.format, p.size) for p in pictures] == [("WEBP", (1024, 1024))] * 2


def test_omitted_parameters_take_the_defaults(simulator):
    request_id = submit(simulator, {"prompt": "just a prompt"}).json()["request_id"]
    completed = poll_until_finished(simulator, request_id)[-1]

    assert completed["metadata"]["image_size"] == "1024x1024"
    assert completed["metadata"]["quality"] == "high"
    assert completed["metadata"]["output_format"] == "png"
    [image] = completed["images"]
    assert (image["width"], image["height"], image["content_type"]) == (1024, 1024, "image/png")


def test_a_prompt_with_the_fail_marker_ends_failed(simulator):
    request_id = submit(simulator, {"prompt": "please #fail now"}).json()["request_id"]

    answers = poll_until_finished(simulator, request_id)

    assert answers[-1] == {
        "status": "FAILED",
        "request_id": request_id,
        "error": "Simulated failure: the prompt asked for it",
    }


def test_image_urls_use_the_configured_storage_host(make_simulator):
    simulator = make_simulator(image_base_url="https://storage.example.test/")
    request_id = submit(simulator, {"prompt": "a fox"}).json()["request_id"]
    [image] = poll_until_finished(simulator, request_id)[-1]["images"]
    assert image["url"] == f"https://storage.example.test/images/{request_id}/1.png"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({}, "prompt is required"),
        ({"prompt": ""}, "prompt is required"),
        ({"prompt": "   "}, "prompt is required"),
        ({"prompt": 42}, "prompt is required"),
        ({"prompt": "x" * 32_001}, "prompt must be at most 32000 characters"),
        ({"prompt": "a", "image_size": "512x512"}, "image_size must be one of"),
        ({"prompt": "a", "background": "green"}, "background must be one of"),
        ({"prompt": "a", "quality": "ultra"}, "quality must be one of"),
        ({"prompt": "a", "output_format": "gif"}, "output_format must be one of"),
        ({"prompt": "a", "num_images": 0}, "num_images must be an integer from 1 to 4"),
        ({"prompt": "a", "num_images": 5}, "num_images must be an integer from 1 to 4"),
        ({"prompt": "a", "num_images": "2"}, "num_images must be an integer from 1 to 4"),
        ({"prompt": "a", "num_images": 1.5}, "num_images must be an integer from 1 to 4"),
        ({"prompt": "a", "num_images": True}, "num_images must be an integer from 1 to 4"),
        (
            {"prompt": "a", "background": "transparent", "output_format": "jpeg"},
            "transparent background needs output_format png or webp",
        ),
        (["prompt", "a"], "the body must be a JSON object"),
    ],
)
def test_invalid_parameters_are_refused_with_400(simulator, body, problem):
    response = submit(simulator, body)

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    [(field, message)] = response.json().items()
    assert field == "error"
    assert message.startswith("Invalid request parameters")
    assert problem in message
    assert simulator.submissions == 0


def test_a_prompt_of_exactly_32000_characters_is_accepted(simulator):
    assert submit(simulator, {"prompt": "x" * 32_000}).status_code == 200


def test_a_body_that_is_not_json_is_refused_with_400(simulator):
    for path in (SUBMIT_PATH, RESULT_PATH):
        response = httpx.post(simulator.root_url + path, content=b"prompt=a", headers=headers())
        assert response.status_code == 400
        assert "error" in response.json()


def test_a_poll_without_request_id_is_refused_with_400(simulator):
    response = httpx.post(simulator.root_url + RESULT_PATH, json={}, headers=headers())
    assert response.status_code == 400
    assert response.json() == {"error": "Invalid request parameters: request_id is required"}


@pytest.mark.parametrize("key", [None, "", "wrong-key"])
@pytest.mark.parametrize("path", [SUBMIT_PATH, RESULT_PATH])
def test_a_missing_or_wrong_key_is_refused_with_401(simulator, key, path):
    response = httpx.post(
        simulator.root_url + path, json={"prompt": "a", "request_id": "x"}, headers=headers(key)
    )
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid or missing authentication"}
    assert simulator.submissions == 0


def test_a_missing_key_is_refused_even_by_a_simulator_started_without_one(make_simulator):
    simulator = make_simulator(api_key="")
    assert submit(simulator, {"prompt": "a"}, key=None).status_code == 401
    assert submit(simulator, {"prompt": "a"}, key="").status_code == 401


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/gpt-image-1-5-api-923/v1/gpt-image-1-5-api-request/"),
        ("POST", "/gpt-image-1-5-api-923/v2/gpt-image-1-5-api-request"),
        ("POST", "/gpt-image-1-5-api-request"),
        ("GET", SUBMIT_PATH),
        ("GET", RESULT_PATH),
        ("PUT", SUBMIT_PATH),
        ("DELETE", RESULT_PATH),
        ("GET", "/"),
        ("GET", "/images/sim-unknown/1.png"),
    ],
)
def test_unknown_endpoints_and_methods_are_404_json(simulator, method, path):
    response = httpx.request(method, simulator.root_url + path, json={}, headers=headers())
    assert response.status_code == 404
    assert response.json() == {"error": "Endpoint not found"}


def test_an_unknown_request_id_is_404_json(simulator):
    response = poll(simulator, "a1b2c3d4-e5f6-7890-g1h2-i3j4k5l6m7n8")
    assert response.status_code == 404
    assert list(response.json()) == ["error"]


def test_images_are_not_served_before_completion_or_under_the_wrong_name(make_simulator):
    simulator = make_simulator(queue_seconds=0.3)
    request_id = submit(simulator, {"prompt": "a", "output_format": "webp"}).json()["request_id"]
    assert httpx.get(f"{simulator.root_url}/images/{request_id}/1.webp").status_code == 404
    poll_until_finished(simulator, request_id)
    assert httpx.get(f"{simulator.root_url}/images/{request_id}/1.webp").status_code == 200
    assert httpx.get(f"{simulator.root_url}/images/{request_id}/1.png").status_code == 404
    assert httpx.get(f"{simulator.root_url}/images/{request_id}/2.webp").status_code == 404


def test_scripted_faults_come_in_order_then_normal_answers(simulator):
    simulator.reconfigure(fail_next=[429, 500, "malformed", 503])

    rate_limited = submit(simulator, {"prompt": "a"})
    assert rate_limited.status_code == 429
    assert rate_limited.headers["retry-after"] == "1"
    assert rate_limited.json() == {"error": "Rate limit exceeded, please retry later"}
    server_error = submit(simulator, {"prompt": "a"})
    assert server_error.status_code == 500
    assert server_error.json() == {"error": "An unexpected error occurred, please try again later"}
    malformed = submit(simulator, {"prompt": "a"})
    assert malformed.status_code == 200
    with pytest.raises(ValueError):
        malformed.json()
    assert submit(simulator, {"prompt": "a"}).status_code == 503
    assert submit(simulator, {"prompt": "a"}).status_code == 200

    assert simulator.submissions == 1  # faulted requests were not processed
    assert len(simulator.received) == 5
    assert simulator.requests_by_path[SUBMIT_PATH] == 5


def test_scripted_faults_hit_polls_too_but_not_image_downloads(simulator):
    request_id = submit(simulator, {"prompt": "a"}).json()["request_id"]
    [image] = poll_until_finished(simulator, request_id)[-1]["images"]
    simulator.reconfigure(fail_next=[500])

    assert httpx.get(image["url"]).status_code == 200
    assert poll(simulator, request_id).status_code == 500
    assert poll(simulator, request_id).status_code == 200


def test_a_slow_answer_is_processed_then_answered_late(make_simulator):
    simulator = make_simulator(slow_seconds=0.5, fail_next=["slow"])
    started = time.monotonic()
    response = submit(simulator, {"prompt": "a"})
    assert time.monotonic() - started >= 0.5
    assert response.status_code == 200
    assert simulator.submissions == 1


def test_random_fault_rates_apply(make_simulator):
    simulator = make_simulator(rate_429=1.0, retry_after_seconds=7, seed=1)
    answers = [submit(simulator, {"prompt": "a"}) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [429, 429, 429]
    assert answers[0].headers["retry-after"] == "7"

    simulator.reconfigure(rate_429=0.0, rate_500=0.5, seed=3)
    codes = [submit(simulator, {"prompt": "a"}).status_code for _ in range(20)]
    assert set(codes) == {200, 500}


def test_reconfigure_refuses_unknown_settings(simulator):
    with pytest.raises(TypeError):
        simulator.reconfigure(rate_teapot=1)


def test_it_records_headers_without_the_key(simulator):
    submit(simulator, {"prompt": "a"})
    [(method, path, seen)] = simulator.request_log
    assert (method, path) == ("POST", SUBMIT_PATH)
    assert seen["ocp-apim-subscription-key"] == "***"
    assert seen["cache-control"] == "no-cache"
    assert SIMULATOR_TEST_KEY not in repr(simulator.request_log)


def test_the_management_command_serves_and_prints_its_url():
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen(
        [sys.executable, "manage.py", "simulate_gateway", "--port", "0", "--api-key", "k"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = process.stdout.readline().strip()
        base_url = line.split()[-1]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/gpt-image-1-5-api-923/v1", base_url)
        response = httpx.post(
            base_url + "/gpt-image-1-5-api-request",
            json={"prompt": "a"},
            headers=headers("k"),
        )
        assert response.json()["status"] == "IN_QUEUE"
    finally:
        process.terminate()
        process.wait(timeout=5)
