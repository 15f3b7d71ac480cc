"""The baseline a user's wait is compared with: a bare script that submits one generation,
polls every 0.1 s and downloads its images, against the same gateway (simulator).

No retries, no database, no worker: the least any client could take for one generation.

    from tests.benchmarks.bare_client import bare_generation_seconds
    seconds = bare_generation_seconds(base_url, api_key)          # one run
    seconds = median_bare_generation_seconds(base_url, api_key, runs=3)
    seconds = asyncio.run(bare_burst_seconds(base_url, api_key, 100))  # 100 at once
"""

import asyncio
import statistics
import time

import httpx

SUBMIT = "/gpt-image-1-5-api-request"
RESULT = "/gpt-image-1-5-api-request-result"
PARAMS = {
    "prompt": "benchmark lighthouse, bare script",
    "image_size": "1024x1024",
    "background": "auto",
    "quality": "low",
    "num_images": 1,
    "output_format": "png",
}


def bare_generation_seconds(base_url, api_key, params=None, poll_every=0.1, timeout=120):
    """Seconds from sending the submit until every image is downloaded."""
    headers = {
        "Content-Type": "application/json",
        "Cache-Control": "no-cache",
        "Ocp-Apim-Subscription-Key": api_key,
    }
    with httpx.Client(headers=headers, timeout=30) as client:
        started = time.monotonic()
        submitted = client.post(base_url + SUBMIT, json=params or PARAMS)
        submitted.raise_for_status()
        request_id = submitted.json()["request_id"]
        while True:
            answer = client.post(base_url + RESULT, json={"request_id": request_id})
            answer.raise_for_status()
            body = answer.json()
            if body["status"] == "COMPLETED":
                break
            if body["status"] == "FAILED" or time.monotonic() - started > timeout:
                raise RuntimeError(f"the bare script's generation did not complete: {body}")
            time.sleep(poll_every)
        for image in body["images"]:
            client.get(image["url"]).raise_for_status()
        return time.monotonic() - started


def median_bare_generation_seconds(base_url, api_key, runs=3, **options):
    return statistics.median(
        bare_generation_seconds(base_url, api_key, **options) for _ in range(runs)
    )


async def bare_burst_seconds(base_url, api_key, count, connections=32, poll_every=0.1):
    """Seconds for a bare asyncio script to make `count` generations at once (submit, poll
    every `poll_every` after each answer, download), over `connections` connections: the
    least a client of this gateway could take for a burst."""
    headers = {
        "Content-Type": "application/json",
        "Cache-Control": "no-cache",
        "Ocp-Apim-Subscription-Key": api_key,
    }
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(headers=headers, timeout=60, limits=limits) as client:

        async def one(n):
            submitted = await client.post(base_url + SUBMIT, json={**PARAMS, "prompt": f"bare {n}"})
            submitted.raise_for_status()
            request_id = submitted.json()["request_id"]
            while True:
                answer = await client.post(base_url + RESULT, json={"request_id": request_id})
                answer.raise_for_status()
                body = answer.json()
                if body["status"] == "COMPLETED":
                    break
                if body["status"] == "FAILED":
                    raise RuntimeError(f"the bare script's generation failed: {body}")
                await asyncio.sleep(poll_every)
            for image in body["images"]:
                (await client.get(image["url"])).raise_for_status()

        started = time.monotonic()
        await asyncio.gather(*(one(n) for n in range(count)))
        return time.monotonic() - started
