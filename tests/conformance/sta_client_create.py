"""Creates observations through Hoheit's SensorThings API with the FROST
Python client (frost-sta-client), as FROST-fed connectors do, and prints what
the client saw as JSON, for tests/it/sta_create.rs to compare with the
database.

usage: sta_client_create.py BASE_URL DATASTREAM_ID
       (HOHEIT_KEY: a writer's API key; HOHEIT_READ_KEY: a key that may read the datastream)
"""

import json
import os
import sys
import time

import frost_sta_client as fsc
from frost_sta_client.model.ext.data_array_document import DataArrayDocument
from frost_sta_client.model.ext.data_array_value import DataArrayValue

from sta_client import BearerHandler


def main():
    base, datastream_id = sys.argv[1], int(sys.argv[2])
    service = fsc.SensorThingsService(base, auth_handler=BearerHandler(os.environ["HOHEIT_KEY"]))
    datastream = fsc.Datastream(id=datastream_id)
    out = {}

    # One Observation: the client takes its id from the Location header.
    single = fsc.Observation(result=21.5, phenomenon_time="2026-11-20T00:00:00Z", datastream=datastream)
    service.create(single)
    out["created_id"] = single.id

    # The dataArray extension (CreateObservations): one self link per row.
    rows = DataArrayValue()
    rows.datastream = datastream
    rows.components = {DataArrayValue.Property.PHENOMENON_TIME, DataArrayValue.Property.RESULT}
    rows.add_observation(fsc.Observation(phenomenon_time="2026-11-20T00:01:00Z", result=22.25, datastream=datastream))
    rows.add_observation(fsc.Observation(phenomenon_time="2026-11-20T00:02:00Z", result=True, datastream=datastream))
    document = DataArrayDocument()
    document.value = [rows]
    created = service.observations().create(document)
    out["array_links"] = [o.self_link for o in created]

    # Read back through the client: the created id names the observation
    # once the writer stored it (201 means Kafka confirmed it).
    reader = fsc.SensorThingsService(base, auth_handler=BearerHandler(os.environ["HOHEIT_READ_KEY"]))
    for _ in range(60):
        try:
            found = reader.observations().find(single.id)
            break
        except Exception:  # not stored yet
            time.sleep(0.5)
    else:
        found = reader.observations().find(single.id)
    out["found"] = {"id": found.id, "result": found.result}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
