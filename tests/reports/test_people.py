"""People: per tagger pace and habits, the team per day against a target."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import UserFactory
from tests.reports.conftest import figures, make_decision, table_rows

pytestmark = pytest.mark.django_db

URL = reverse("reports:people")


@pytest.fixture
def two_taggers():
    ada, bob = UserFactory(username="ada"), UserFactory(username="bob")
    # ada on 10 March: decided 10, 20, 30, 40 s; a skip (5 s) and an undone
    # accept (15 s) count as time spent, not as items.
    for action, seconds in (("accept", 10), ("accept", 20), ("edit", 30), ("reject", 40)):
        make_decision(at="2025-03-10 09:00", reviewer=ada, action=action, seconds=seconds)
    make_decision(at="2025-03-10 10:00", reviewer=ada, action="skip", seconds=5)
    make_decision(at="2025-03-10 11:00", reviewer=ada, action="accept", seconds=15, undone=True)
    # bob on 11 March; his 13 March decision is outside the range.
    make_decision(at="2025-03-11 09:00", reviewer=bob, action="accept", seconds=60)
    make_decision(at="2025-03-11 23:59", reviewer=bob, action="edit", seconds=90)
    make_decision(at="2025-03-13 00:30", reviewer=bob, action="edit", seconds=500)


def test_per_tagger_figures(client, manager, two_taggers):
    client.force_login(manager)

    response = client.get(URL, {"start": "2025-03-10", "end": "2025-03-12"})

    # items per hour = decided / (all seconds spent / 3600):
    # ada 4 / (120 / 3600) = 120, bob 2 / (150 / 3600) = 48, team 6 / (270 / 3600) = 80
    assert table_rows(response, "taggers") == [
        ["ada", "4", "2", "1", "1", "66.7%", "33.3%", "1", "1", "0.03", "120.0", "25.0"],
        ["bob", "2", "1", "1", "0", "50.0%", "50.0%", "0", "0", "0.04", "48.0", "75.0"],
        ["Team", "6", "3", "2", "1", "60.0%", "40.0%", "1", "1", "0.08", "80.0", "35.0"],
    ]


def test_team_per_day_against_the_target(client, manager, two_taggers):
    client.force_login(manager)

    response = client.get(URL, {"start": "2025-03-10", "end": "2025-03-12", "target": "3"})

    assert table_rows(response, "team") == [
        ["2025-03-10", "4", "3", "133.3%"],
        ["2025-03-11", "2", "3", "66.7%"],
        ["2025-03-12", "0", "3", "0.0%"],
        ["Total", "6", "9", "66.7%"],
    ]
    shown = figures(response)
    assert shown["Days at or above target (of 3)"] == "1"
    assert shown["Items decided per day"] == "2.0"
    assert shown["Team items per hour"] == "80.0"
    assert shown["Median seconds per item"] == "35.0"
    assert shown["Undone decisions"] == "1"
    assert b'class="target"' in response.content  # the target line on the chart


def test_without_a_target_there_is_no_target_line(client, manager, two_taggers):
    client.force_login(manager)

    response = client.get(URL, {"start": "2025-03-10", "end": "2025-03-12"})

    assert table_rows(response, "team")[0] == ["2025-03-10", "4", "—", "—"]
    assert figures(response)["Daily target (items)"] == "—"
    assert b'class="target"' not in response.content
