import uuid

from config.celery import app, health


def test_health_task_round_trips_through_a_real_worker(celery_worker):
    token = uuid.uuid4().hex

    result = health.delay(token)

    assert result.get(timeout=20) == token
    assert app.conf.task_acks_late is True
