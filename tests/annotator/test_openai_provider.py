"""OpenAIProvider against a local OpenAI-compatible server: the real SDK and
the real retry loop run; only the remote service is fake."""

from __future__ import annotations

import base64
import email.utils
import random
import time
from dataclasses import replace

import httpcore2
import pytest

from annotator.providers.base import AnnotationRequest, ProviderError
from annotator.providers.openai_provider import OpenAIProvider
from annotator.schema import AnnotationOut, strict_json_schema
from catalog.taxonomy.vocabulary import Vocabulary
from tests.fake_openai import (
    FakeOpenAI,
    Reply,
    drop_connection,
    error_reply,
    reply_with_annotation,
)

API_KEY = "sk-test-0123456789abcdef"
IMAGE = b"\xff\xd8\xff\xe0 not really a jpeg \x00\x01\x02\xff\xd9"
ANNOTATION = {
    "category": "Apparel",
    "subcategory": "Shirts",
    "attributes": {"color": "Navy Blue", "material": "Cotton", "style": "Casual"},
    "tags": ["navy shirt", "checked", "casual", "cotton", "men"],
    "confidence": 0.91,
    "field_confidence": {"category": 0.97, "subcategory": 0.93, "color": 0.95},
    "image_issues": [],
}
JSON_OBJECT = {"type": "json_object"}


def make_provider(fake: FakeOpenAI, **overrides) -> tuple[OpenAIProvider, list[float]]:
    sleeps: list[float] = []
    options = {
        "base_url": fake.url,
        "api_key": API_KEY,
        "timeout": 2.0,
        "max_retries": 2,
        "sleep": sleeps.append,
    }
    return OpenAIProvider(**(options | overrides)), sleeps


def make_request(title: str = "Men's navy checked cotton shirt") -> AnnotationRequest:
    return AnnotationRequest(
        image_jpeg=IMAGE,
        title=title,
        system_prompt="You tag fashion products. Answer with one JSON object.",
        user_prompt=f"Product title: {title}",
        model="gpt-test-vision",
        json_schema=strict_json_schema(),
        vocabulary=Vocabulary(categories=(), attributes={}),
        image_detail="low",
    )


def test_the_schema_is_built_once_per_attribute_set_and_each_caller_gets_its_own_copy():
    codes = ("color", "fit")
    first = strict_json_schema(codes)
    first["properties"]["attributes"]["properties"]["color"] = "changed"

    second = strict_json_schema(codes)

    assert second["properties"]["attributes"]["properties"]["color"] != "changed"
    assert set(second["properties"]["attributes"]["properties"]) == {"color", "fit"}
    assert second["properties"]["attributes"]["required"] == ["color", "fit"]
    assert strict_json_schema(("color",)) != second


def test_success_sends_strict_json_schema_and_returns_the_parsed_annotation(fake_openai):
    # given
    fake_openai.queue(reply_with_annotation(ANNOTATION, prompt_tokens=1234, completion_tokens=87))
    provider, sleeps = make_provider(fake_openai)

    # when
    result = provider.annotate(make_request())

    # then the server received one complete request
    [sent] = fake_openai.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent["model"] == "gpt-test-vision"
    assert sent["temperature"] == 0
    assert sent["max_completion_tokens"] == 800
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "product_annotation",
            "schema": strict_json_schema(),
            "strict": True,
        },
    }
    system, user = sent["messages"]
    assert system == {
        "role": "system",
        "content": "You tag fashion products. Answer with one JSON object.",
    }
    text, image = user["content"]
    assert text == {"type": "text", "text": "Product title: Men's navy checked cotton shirt"}
    assert image["type"] == "image_url"
    assert image["image_url"]["detail"] == "low"
    prefix, encoded = image["image_url"]["url"].split(",", 1)
    assert prefix == "data:image/jpeg;base64"
    assert base64.b64decode(encoded) == IMAGE

    # and the result carries the annotation and the bookkeeping
    assert result.annotation == AnnotationOut.model_validate(ANNOTATION)
    assert result.parse_error == ""
    assert result.raw_text.startswith("{")
    assert result.model == "gpt-test-vision"
    assert (result.input_tokens, result.output_tokens) == (1234, 87)
    assert result.attempts == 1
    assert result.errors == []
    assert result.latency_ms >= 0
    assert sleeps == []


def test_any_title_arrives_as_written_beside_the_image(fake_openai):
    # given a title with quotes, backslashes, control and non-ASCII characters,
    # and text that looks like the image's place in the request
    title = 'Robe "été" \\ 100% soie\t\u2028 "data:image/jpeg;base64,"'
    fake_openai.queue(reply_with_annotation(ANNOTATION))
    provider, _ = make_provider(fake_openai)

    provider.annotate(make_request(title))

    [sent] = fake_openai.requests
    text, image = sent["messages"][1]["content"]
    assert text["text"] == f"Product title: {title}"
    assert base64.b64decode(image["image_url"]["url"].split(",", 1)[1]) == IMAGE
    assert sent.headers["content-type"] == "application/json"


@pytest.mark.parametrize("size", [99_999, 100_000, 100_001])
def test_each_attempt_sends_the_whole_image_in_a_body_of_the_declared_length(fake_openai, size):
    # given an image whose size is 0, 1 or 2 past a multiple of 3 (the three
    # base64 paddings), tried twice (a 500, then an answer)
    image = random.Random(size).randbytes(size)
    fake_openai.queue(error_reply(500, "boom"), reply_with_annotation(ANNOTATION))
    provider, _ = make_provider(fake_openai)

    result = provider.annotate(replace(make_request(), image_jpeg=image))

    # then each attempt sent the whole image, in a body of the length it
    # declared (the client's HTTP library refuses to send more or less; the
    # server reads that many bytes and parses them), not chunked
    assert result.attempts == 2
    assert len(fake_openai.requests) == 2
    for sent in fake_openai.requests:
        url = sent["messages"][1]["content"][1]["image_url"]["url"]
        assert base64.b64decode(url.split(",", 1)[1], validate=True) == image
        assert "transfer-encoding" not in sent.headers
        assert "content-length" in sent.headers


def test_an_answer_larger_than_the_read_buffer_arrives_whole(fake_openai):
    # given an answer several times the client's 8 KB read size (many long tags)
    long_tags = [f"{'very long search keyword ' * 200}{n}" for n in range(8)]
    fake_openai.queue(reply_with_annotation(ANNOTATION | {"tags": long_tags}))
    provider, _ = make_provider(fake_openai)

    result = provider.annotate(make_request())

    # then it is read to its end and parsed
    assert len(result.raw_text) > 4 * httpcore2.HTTP11Connection.READ_NUM_BYTES
    assert result.parse_error == ""
    assert result.annotation.tags == long_tags


def test_429_with_retry_after_waits_exactly_that_long(fake_openai):
    # given
    fake_openai.queue(
        error_reply(429, "Rate limit reached", headers={"Retry-After": "2"}),
        reply_with_annotation(ANNOTATION),
    )
    provider, sleeps = make_provider(fake_openai)

    # when
    result = provider.annotate(make_request())

    # then
    assert sleeps == [2.0]
    assert result.attempts == 2
    assert result.errors == ["429 rate limited"]
    assert result.annotation is not None
    assert len(fake_openai.requests) == 2


def http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


@pytest.mark.parametrize(
    ("header", "value", "low", "high"),
    [
        ("retry-after-ms", lambda: "1500", 1.5, 1.5),
        ("Retry-After", lambda: "0.25", 0.25, 0.25),
        ("Retry-After", lambda: "3600", 60.0, 60.0),  # capped
        ("Retry-After", lambda: http_date(5), 3.0, 5.0),  # one-second resolution
        ("Retry-After", lambda: http_date(-5), 0.0, 0.0),
    ],
    ids=["milliseconds", "fractional-seconds", "capped", "http-date", "http-date-past"],
)
def test_retry_after_variants(fake_openai, header, value, low, high):
    # given
    fake_openai.queue(
        error_reply(503, "busy", headers={header: value()}), reply_with_annotation(ANNOTATION)
    )
    provider, sleeps = make_provider(fake_openai)

    # when
    provider.annotate(make_request())

    # then
    [slept] = sleeps
    assert low <= slept <= high


def test_5xx_is_retried_with_jittered_exponential_backoff(fake_openai):
    # given
    fake_openai.queue(
        error_reply(500, "Internal error"),
        error_reply(503, "Overloaded"),
        reply_with_annotation(ANNOTATION),
    )
    provider, sleeps = make_provider(fake_openai)

    # when
    result = provider.annotate(make_request())

    # then
    assert result.attempts == 3
    assert result.errors == ["500 server error", "503 server error"]
    assert result.annotation is not None
    first, second = sleeps
    assert 0 <= first <= 0.5
    assert 0 <= second <= 1.0


def test_exhausted_retries_raise_a_retryable_error(fake_openai):
    # given
    fake_openai.queue(*[error_reply(502, "Bad gateway") for _ in range(3)])
    provider, sleeps = make_provider(fake_openai, max_retries=2)

    # when
    with pytest.raises(ProviderError) as caught:
        provider.annotate(make_request())

    # then
    error = caught.value
    assert error.retryable is True
    assert error.attempts == 3
    assert error.status_code == 502
    assert str(error) == (
        "openai: no answer after 3 attempts: 502 server error; 502 server error; 502 server error"
    )
    assert len(fake_openai.requests) == 3
    assert len(sleeps) == 2


def test_408_409_and_html_error_pages_are_retried(fake_openai):
    # given
    fake_openai.queue(
        error_reply(408, "Request timeout"),
        error_reply(409, "Conflict"),
        Reply(status=502, body="<html><body>502 Bad Gateway</body></html>"),
        reply_with_annotation(ANNOTATION),
    )
    provider, _ = make_provider(fake_openai, max_retries=3)

    # when
    result = provider.annotate(make_request())

    # then
    assert result.errors == ["408 request timeout", "409 conflict", "502 server error"]
    assert result.attempts == 4


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (400, "Invalid image data"),
        (401, "Invalid authentication"),
        (403, "Country not supported"),
        (404, "The model `gpt-test-vision` does not exist"),
        (422, "Unprocessable entity"),
    ],
)
def test_client_errors_fail_at_once_without_retrying(fake_openai, status, message):
    # given
    fake_openai.queue(error_reply(status, message), reply_with_annotation(ANNOTATION))
    provider, sleeps = make_provider(fake_openai)

    # when
    with pytest.raises(ProviderError) as caught:
        provider.annotate(make_request())

    # then
    error = caught.value
    assert error.retryable is False
    assert error.status_code == status
    assert error.attempts == 1
    assert str(error) == f"openai: HTTP {status}: {message}"
    assert len(fake_openai.requests) == 1
    assert sleeps == []


def test_error_messages_never_contain_the_api_key(fake_openai):
    # given a server that echoes the key back, as some resellers do
    fake_openai.queue(error_reply(401, f"Incorrect API key provided: {API_KEY}."))
    provider, _ = make_provider(fake_openai)

    # when
    with pytest.raises(ProviderError) as caught:
        provider.annotate(make_request())

    # then
    error = caught.value
    assert API_KEY not in str(error)
    assert API_KEY not in repr(error)
    assert str(error) == "openai: HTTP 401: Incorrect API key provided: [api key]."
    assert error.__cause__ is None
    assert error.__suppress_context__ is True


def test_a_slow_server_times_out_and_is_retried_then_gives_up(fake_openai):
    # given a server slower than the client's timeout
    fake_openai.queue(Reply(delay=1.0, content="{}"), Reply(delay=1.0, content="{}"))
    provider, sleeps = make_provider(fake_openai, timeout=0.25, max_retries=1)

    # when
    with pytest.raises(ProviderError) as caught:
        provider.annotate(make_request())

    # then
    error = caught.value
    assert error.retryable is True
    assert error.attempts == 2
    assert error.status_code is None
    assert str(error) == "openai: no answer after 2 attempts: timeout; timeout"
    assert len(fake_openai.requests) == 2
    assert len(sleeps) == 1


def test_a_timeout_then_an_answer_succeeds(fake_openai):
    # given
    fake_openai.queue(Reply(delay=1.0, content="{}"), reply_with_annotation(ANNOTATION))
    provider, _ = make_provider(fake_openai, timeout=0.25)

    # when
    result = provider.annotate(make_request())

    # then
    assert result.errors == ["timeout"]
    assert result.attempts == 2
    assert result.annotation is not None


def test_a_dropped_connection_is_retried(fake_openai):
    # given
    fake_openai.queue(drop_connection(), reply_with_annotation(ANNOTATION))
    provider, _ = make_provider(fake_openai)

    # when
    result = provider.annotate(make_request())

    # then
    assert result.errors == ["connection error"]
    assert result.attempts == 2
    assert result.annotation is not None


def test_refused_json_schema_falls_back_to_json_object_and_remembers_it(fake_openai):
    # given a server without structured outputs that answers in a fence with prose
    fake_openai.queue(
        error_reply(400, "response_format json_schema is not supported"),
        reply_with_annotation(ANNOTATION, fenced=True, prose=True),
        reply_with_annotation(ANNOTATION, fenced=True),
    )
    provider, sleeps = make_provider(fake_openai)

    # when
    first = provider.annotate(make_request())

    # then the second request asked for a plain JSON object and the answer was parsed
    assert fake_openai.requests[0]["response_format"]["type"] == "json_schema"
    assert fake_openai.requests[1]["response_format"] == JSON_OBJECT
    assert first.annotation == AnnotationOut.model_validate(ANNOTATION)
    assert first.attempts == 2
    assert first.errors == [
        "400 parameter refused, adapting: response_format json_schema is not supported"
    ]
    assert sleeps == []

    # when a later product is annotated
    second = provider.annotate(make_request("Red wool scarf"))

    # then it asks for json_object straight away
    assert len(fake_openai.requests) == 3
    assert fake_openai.requests[2]["response_format"] == JSON_OBJECT
    assert second.attempts == 1
    assert second.errors == []


def test_refused_json_object_falls_back_to_no_response_format(fake_openai):
    # given
    fake_openai.queue(
        error_reply(400, "response_format json_schema is not supported"),
        error_reply(400, "'response_format' of type 'json_object' is not supported"),
        reply_with_annotation(ANNOTATION, prose=True),
        error_reply(400, "response_format is not supported"),
    )
    provider, _ = make_provider(fake_openai)

    # when
    result = provider.annotate(make_request())

    # then
    formats = [request.get("response_format", {}).get("type") for request in fake_openai.requests]
    assert formats == ["json_schema", "json_object", None]
    assert result.attempts == 3
    assert result.annotation is not None

    # and with nothing left to drop, a further refusal is an ordinary 400
    with pytest.raises(ProviderError) as caught:
        provider.annotate(make_request())
    assert caught.value.retryable is False
    assert caught.value.status_code == 400
    assert len(fake_openai.requests) == 4


def test_a_bare_not_supported_about_another_parameter_keeps_the_schema(fake_openai):
    # given OpenAI's answer for a parameter the model does not take
    fake_openai.queue(error_reply(400, "Unsupported value: 'stream' is not supported"))
    provider, _ = make_provider(fake_openai)

    # when
    with pytest.raises(ProviderError):
        provider.annotate(make_request())

    # then
    assert len(fake_openai.requests) == 1


def test_refused_max_completion_tokens_and_temperature_are_adapted(fake_openai):
    # given an older server, then a reasoning model
    fake_openai.queue(
        error_reply(400, "Unrecognized request argument supplied: max_completion_tokens"),
        error_reply(400, "Unsupported value: 'temperature' does not support 0 with this model."),
        reply_with_annotation(ANNOTATION),
        reply_with_annotation(ANNOTATION),
    )
    provider, _ = make_provider(fake_openai)

    # when
    result = provider.annotate(make_request())
    provider.annotate(make_request())

    # then
    first, second, third, later = fake_openai.requests
    assert (first["max_completion_tokens"], first["temperature"]) == (800, 0)
    assert second["max_tokens"] == 800
    assert "max_completion_tokens" not in second
    assert "temperature" not in third
    assert "temperature" not in later
    assert later["max_tokens"] == 800
    assert later["response_format"]["type"] == "json_schema"
    assert result.attempts == 3


def test_an_unparseable_answer_is_a_result_not_an_exception(fake_openai):
    # given
    fake_openai.queue(
        Reply(content="Sorry, I can only describe the shirt in words."),
        Reply(content="It is a shirt."),
    )
    provider, _ = make_provider(fake_openai)

    # when
    result = provider.annotate(make_request())

    # then after one repair attempt
    assert result.annotation is None
    assert result.parse_error == "no JSON object in the answer"
    assert result.raw_text == "It is a shirt."
    assert (result.input_tokens, result.output_tokens) == (2400, 180)
    assert result.attempts == 2
    assert fake_openai.requests[1]["messages"][-1]["content"] == (
        "That answer is not valid: no JSON object in the answer. Answer again with only "
        "the corrected JSON object, following the schema."
    )


def test_an_answer_cut_off_by_the_token_limit_says_so(fake_openai):
    # given
    fake_openai.queue(Reply(content='{"category": "Apparel", "tags": ["na', finish_reason="length"))
    provider, _ = make_provider(fake_openai)

    # when
    result = provider.annotate(make_request())

    # then
    assert result.annotation is None
    assert result.parse_error == (
        "answer cut off at 800 tokens: unterminated JSON object (was the answer cut off?)"
    )


@pytest.mark.parametrize(
    ("reply", "parse_error", "raw_text"),
    [
        (Reply(content=""), "empty answer", ""),
        (Reply(content=None), "empty answer", ""),
        (
            Reply(content=None, refusal="I can't help with that."),
            "refused: I can't help with that.",
            "I can't help with that.",
        ),
    ],
    ids=["empty", "null", "refusal"],
)
def test_empty_and_refused_answers(fake_openai, reply, parse_error, raw_text):
    # given
    fake_openai.queue(reply)
    provider, _ = make_provider(fake_openai)

    # when
    result = provider.annotate(make_request())

    # then
    assert result.annotation is None
    assert result.parse_error == parse_error
    assert result.raw_text == raw_text


def test_the_rate_limiter_runs_before_every_attempt(fake_openai):
    # given
    fake_openai.queue(
        error_reply(400, "response_format json_schema is not supported"),
        error_reply(429, "Slow down", headers={"Retry-After": "0"}),
        error_reply(503, "Overloaded"),
        reply_with_annotation(ANNOTATION),
    )
    events: list[str] = []
    provider, _ = make_provider(
        fake_openai, rate_limiter=lambda: events.append("token"), sleep=lambda s: None
    )

    # when
    result = provider.annotate(make_request())

    # then
    assert result.attempts == 4
    assert events == ["token"] * 4
    assert len(fake_openai.requests) == 4


def test_default_reply_answers_from_the_request(fake_openai):
    # given a server that answers from the product title in the prompt
    def answer(request):
        text = request["messages"][1]["content"][0]["text"]
        category = "Accessories" if "scarf" in text else "Apparel"
        return reply_with_annotation({"category": category, "confidence": 0.8})

    fake_openai.default = answer
    provider, _ = make_provider(fake_openai)

    # when
    scarf = provider.annotate(make_request("Red wool scarf"))
    shirt = provider.annotate(make_request("Blue shirt"))

    # then
    assert scarf.annotation.category == "Accessories"
    assert shirt.annotation.category == "Apparel"
