"""Validates an OpenAPI document (JSON file) with openapi-spec-validator.

Used by tests/it/openapi.rs: `python check_openapi.py DOCUMENT.json`. Prints
`check_openapi: valid OpenAPI <version>` and exits 0, or prints the first
error and exits 1.
"""

import json
import sys

from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        document = json.load(f)
    version = str(document.get("openapi", ""))
    if not version.startswith("3.1"):
        print(f"check_openapi: the document says openapi {version!r}, expected 3.1.x")
        return 1
    try:
        validate(document)  # picks the OpenAPI 3.1 validator from the `openapi` field
    except OpenAPIValidationError as error:
        print(f"check_openapi: not valid: {error}")
        return 1
    print(f"check_openapi: valid OpenAPI {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
