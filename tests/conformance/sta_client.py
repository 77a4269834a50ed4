"""Drives Hoheit's SensorThings API with the FROST Python client
(frost-sta-client) and prints what it saw as JSON, for tests/it/sta.rs to
compare with the database.

usage: sta_client.py BASE_URL DATASTREAM_ID   (HOHEIT_KEY: optional API key)
"""

import json
import os
import sys

import frost_sta_client as fsc
from frost_sta_client.service.auth_handler import AuthHandler
from requests.auth import AuthBase


class Bearer(AuthBase):
    def __init__(self, key):
        self.key = key

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self.key}"
        return request


class BearerHandler(AuthHandler):
    """The client knows only Basic auth; Hoheit's keys are bearer tokens."""

    def __init__(self, key):
        super().__init__()
        self.key = key

    def add_auth_header(self):
        return Bearer(self.key)


def main():
    base, datastream_id = sys.argv[1], int(sys.argv[2])
    key = os.environ.get("HOHEIT_KEY")
    service = fsc.SensorThingsService(base, auth_handler=BearerHandler(key) if key else None)
    out = {}

    things = list(service.things().query().list())
    out["things"] = sorted(t.name for t in things)
    out["datastreams_per_thing"] = {
        t.name: sorted(d.id for d in t.get_datastreams().query().list()) for t in things
    }

    datastream = service.datastreams().find(datastream_id)
    out["datastream"] = {
        "id": datastream.id,
        "name": datastream.name,
        "unit": datastream.unit_of_measurement.symbol if datastream.unit_of_measurement else None,
    }

    # Small pages: the client follows @iot.nextLink through all of them.
    observations = datastream.get_observations().query().top(7).orderby("phenomenonTime", "asc").list()
    out["observations"] = [[o.phenomenon_time, o.result] for o in observations]

    filtered = (
        service.observations()
        .query()
        .filter(f"result ge 3 and Datastream/id eq {datastream_id}")
        .top(1000)
        .list()
    )
    out["result_ge_3"] = len(list(filtered))

    first = out["observations"][0] if out["observations"] else None
    if first is not None:
        one = next(iter(datastream.get_observations().query().top(1).orderby("phenomenonTime", "asc").list()))
        found = service.observations().find(one.id)
        out["found"] = [found.phenomenon_time, found.result]

    print(json.dumps(out))


if __name__ == "__main__":
    main()
