"""A bounded load test of a served model: a fixed number of requests, a fixed concurrency, valid and invalid
careers mixed, every answer checked, latency percentiles and throughput measured.

    report = run_load(url, valid_careers, invalid_careers, LoadConfig(requests=2000, concurrency=16))
    print(report.line()); assert not report.problems()

What "correct under load" means here: no 5xx and no dropped connection; every valid request a 200 with one
prediction per career; every invalid request a 400 whose ``message`` contains the reason the serving code gives
for that career (so a 400 for the wrong reason is caught too). Requests are drawn deterministically from
``seed``. The figures are wall-clock on the client, queueing included: with ``concurrency`` above the
server's worker count, p99 includes the wait for a free worker.
"""

from __future__ import annotations

import json
import logging
import random
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InvalidCareer:
    """A request body that must be refused, and a part of the message it must be refused with."""

    careers: tuple[Mapping[str, Any], ...]
    message: str  # a substring of the 400's "message"
    params: Mapping[str, Any] | None = None  # e.g. {"top_k": 0}


@dataclass(frozen=True)
class LoadConfig:
    requests: int = 2000
    concurrency: int = 16  # client threads, each with one request in flight
    invalid_fraction: float = 0.25  # share of requests drawn from the invalid careers
    careers_per_request: int = 1  # valid careers per valid request
    top_k: int = 5
    timeout_s: float = 60.0  # per request
    seed: int = 0


@dataclass
class LoadReport:
    requests: int
    valid: int
    invalid: int
    status_counts: dict[
        int, int
    ]  # HTTP status -> requests; 0: no answer (connection refused, reset, timeout)
    wrong: list[str] = field(default_factory=list)  # the first answers that broke the contract
    wrong_count: int = 0
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    wall_s: float = 0.0

    @property
    def p50_ms(self) -> float:
        return _percentile(self.latencies_ms, 50)

    @property
    def p99_ms(self) -> float:
        return _percentile(self.latencies_ms, 99)

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.wall_s if self.wall_s else 0.0

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.status_counts.items() if status >= 500 or status == 0)

    def problems(self) -> list[str]:
        """Empty when the run met the contract (see the module docstring)."""
        out = []
        if self.server_errors:
            out.append(f"{self.server_errors} requests got a 5xx or no answer: {self.status_counts}")
        if self.wrong_count:
            out.append(f"{self.wrong_count} answers broke the contract, e.g. {self.wrong[:3]}")
        return out

    def line(self) -> str:
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.status_counts.items()))
        return (
            f"{self.requests} requests ({self.valid} valid, {self.invalid} invalid) in {self.wall_s:.1f} s: "
            f"{self.requests_per_s:.1f} req/s, p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms; "
            f"status {{{statuses}}}; contract broken {self.wrong_count}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "valid": self.valid,
            "invalid": self.invalid,
            "status_counts": {str(k): v for k, v in sorted(self.status_counts.items())},
            "wrong_count": self.wrong_count,
            "wrong": self.wrong[:10],
            "wall_s": round(self.wall_s, 3),
            "requests_per_s": round(self.requests_per_s, 2),
            "p50_ms": round(self.p50_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
        }


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return float(values[0])
    return float(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1])


def _post(url: str, body: Mapping[str, Any], timeout_s: float) -> tuple[int, str]:
    """(status, text); an HTTP error is an answer too, no answer at all is status 0."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        return 0, f"{type(exc).__name__}: {exc}"


def _check(status: int, text: str, expect: InvalidCareer | None, n_careers: int) -> str | None:
    """None when the answer is what the contract asks for, else what was wrong."""
    if expect is None:
        if status != 200:
            return f"valid request got {status}: {text[:200]}"
        try:
            predictions = json.loads(text)["predictions"]
        except (ValueError, KeyError, TypeError):
            return f"valid request: answer is not JSON with predictions: {text[:200]}"
        if len(predictions) != n_careers:
            return f"valid request: {len(predictions)} predictions for {n_careers} careers"
        return None
    if status != 400:
        return f"invalid request ({expect.message!r}) got {status}: {text[:200]}"
    try:
        message = str(json.loads(text).get("message", ""))
    except ValueError:
        return f"invalid request ({expect.message!r}): 400 body is not JSON: {text[:200]}"
    if expect.message not in message:
        return f"invalid request: 400 without {expect.message!r}: {message[:200]}"
    return None


def run_load(
    url: str,
    valid: Sequence[Mapping[str, Any]],
    invalid: Sequence[InvalidCareer],
    config: LoadConfig = LoadConfig(),
) -> LoadReport:
    """Send ``config.requests`` requests to ``url``/invocations, ``config.concurrency`` at a time.

    Args:
        url: the server's base URL (``http://127.0.0.1:PORT``).
        valid: careers the model must answer; each valid request holds ``careers_per_request`` of them.
        invalid: request bodies the server must refuse with a 400 naming the reason.
    """
    if not valid or (config.invalid_fraction > 0 and not invalid):
        raise ValueError("run_load needs valid careers, and invalid ones when invalid_fraction > 0")
    rng = random.Random(config.seed)
    plan: list[tuple[dict[str, Any], InvalidCareer | None, int]] = []
    for _ in range(config.requests):
        if rng.random() < config.invalid_fraction:
            bad = rng.choice(list(invalid))
            body: dict[str, Any] = {"inputs": list(bad.careers)}
            if bad.params:
                body["params"] = dict(bad.params)
            plan.append((body, bad, len(bad.careers)))
        else:
            careers = [dict(rng.choice(list(valid))) for _ in range(config.careers_per_request)]
            plan.append(({"inputs": careers, "params": {"top_k": config.top_k}}, None, len(careers)))
    endpoint = f"{url.rstrip('/')}/invocations"

    def one(item: tuple[dict[str, Any], InvalidCareer | None, int]) -> tuple[int, float, str | None]:
        body, expect, n = item
        start = time.perf_counter()
        status, text = _post(endpoint, body, config.timeout_s)
        elapsed_ms = (time.perf_counter() - start) * 1000
        return status, elapsed_ms, _check(status, text, expect, n)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=config.concurrency) as pool:
        results = list(pool.map(one, plan))
    wall = time.perf_counter() - start
    report = LoadReport(
        requests=len(plan),
        valid=sum(e is None for _, e, _ in plan),
        invalid=sum(e is not None for _, e, _ in plan),
        status_counts={},
        wall_s=wall,
    )
    for status, ms, wrong in results:
        report.status_counts[status] = report.status_counts.get(status, 0) + 1
        report.latencies_ms.append(ms)
        if wrong is not None:
            report.wrong_count += 1
            if len(report.wrong) < 10:
                report.wrong.append(wrong)
    logger.info("%s", report.line())
    return report


def careers_from_panel(panel: Any, n: int, *, max_years: int = 6) -> list[dict[str, Any]]:
    """Up to ``n`` request careers cut from a canonical panel (a ``pyarrow.Table``): each person's first
    ``max_years`` rows as the history, their covariates as given. Realistic requests for a load test."""
    rows = panel.select(
        ["person_id", "year", "occupation", "education", "gender", "race", "region", "birth_year"]
    ).to_pylist()
    people: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        people.setdefault(str(row["person_id"]), []).append(row)
    out = []
    for pid, history in list(people.items())[:n]:
        history = sorted(history, key=lambda r: r["year"])[:max_years]
        first = history[0]
        covariates = {
            k: first[k] for k in ("gender", "race", "region", "birth_year") if first.get(k) is not None
        }
        entries = []
        for r in history:
            entry: dict[str, Any] = {"year": int(r["year"]), "occupation": str(r["occupation"])}
            if r.get("education") is not None:
                entry["education"] = r["education"]
            entries.append(entry)
        out.append({"person_id": pid, "covariates": covariates, "history": entries})
    return out


def invalid_careers(valid: Mapping[str, Any]) -> list[InvalidCareer]:
    """Request bodies the serving code must refuse, each with the reason its 400 must give; built around a
    ``valid`` career (so the bad one is the second career of its request, and the index is checked too)."""
    first = valid["history"][0]
    year = int(first["year"])
    return [
        InvalidCareer(
            (valid, {"history": [{"year": year, "occupation": "9999"}]}),
            "career 1: field 'history[0].occupation': '9999' is not in the occupation taxonomy",
        ),
        InvalidCareer((valid, {"covariates": {}}), "career 1: field 'history': is required"),
        InvalidCareer(
            (
                valid,
                {
                    "history": [
                        {"year": year + 2, "occupation": first["occupation"]},
                        {"year": year, "occupation": first["occupation"]},
                    ]
                },
            ),
            "career 1: field 'history[1].year'",
        ),
        InvalidCareer(
            (valid, {"history": [{"year": "soon", "occupation": first["occupation"]}]}),
            "career 1: field 'history[0].year': 'soon' must be an integer year",
        ),
        InvalidCareer(
            (valid, {"history": [{"year": year, "occupation": first["occupation"], "education": "phd-ish"}]}),
            "career 1: field 'history[0].education': 'phd-ish' is not a known education",
        ),
        InvalidCareer((valid,), "field 'params.top_k'", params={"top_k": 0}),
    ]
