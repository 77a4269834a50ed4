"""Validates an open data catalog against the DCAT-AP.de 3.0 SHACL shapes.

Used by tests/it/opendata.rs:

    python check_dcat.py CATALOG_FILE MEDIA_TYPE

MEDIA_TYPE is text/turtle, application/rdf+xml or application/ld+json. Loads
the shapes in dcat-ap-de/ (see its README: the EU profile plus the German
rules), runs pyshacl with RDFS inference off, and checks by namespace what
the controlled-vocabulary shapes would check with the vocabularies loaded
(theme, license, frequency, file type, language). Prints every result and a
last line `check_dcat: N violation(s), M warning(s), D dataset(s)`; exits 1
when there is a violation.
"""

import pathlib
import sys

import pyshacl
import rdflib
from rdflib.namespace import DCAT, DCTERMS, RDF, SH

HERE = pathlib.Path(__file__).resolve().parent
SHAPES = [
    "dcat-ap-SHACL-3.0.0.ttl",
    "dcat-ap-SHACL-DE.ttl",
    "dcat-ap-spec-german-additions.ttl",
    "dcat-ap-de-deprecated.ttl",
]
FORMATS = {"text/turtle": "turtle", "application/rdf+xml": "xml", "application/ld+json": "json-ld"}
VOCABULARIES = [
    (DCAT.theme, "http://publications.europa.eu/resource/authority/data-theme/"),
    (DCTERMS.license, "http://dcat-ap.de/def/licenses/"),
    (DCTERMS.accrualPeriodicity, "http://publications.europa.eu/resource/authority/frequency/"),
    (DCTERMS.format, "http://publications.europa.eu/resource/authority/file-type/"),
    (DCTERMS.language, "http://publications.europa.eu/resource/authority/language/"),
]


def main() -> int:
    data = rdflib.Graph().parse(sys.argv[1], format=FORMATS[sys.argv[2]])
    shapes = rdflib.Graph()
    for name in SHAPES:
        shapes.parse(HERE / "dcat-ap-de" / name, format="turtle")
    _, results, _ = pyshacl.validate(data, shacl_graph=shapes, inference="none", allow_warnings=True)
    violations = warnings = 0
    for result in results.subjects(RDF.type, SH.ValidationResult):
        severity = results.value(result, SH.resultSeverity)
        focus = results.value(result, SH.focusNode)
        path = results.value(result, SH.resultPath)
        message = "; ".join(str(m) for m in results.objects(result, SH.resultMessage))
        kind = str(severity).rsplit("#", 1)[-1]
        if severity == SH.Violation:
            violations += 1
        elif severity == SH.Warning:
            warnings += 1
        print(f"{kind}: {focus} {path}: {message}")
    for predicate, namespace in VOCABULARIES:
        for subject, value in data.subject_objects(predicate):
            if not str(value).startswith(namespace):
                violations += 1
                print(f"Violation: {subject} {predicate}: {value} is not in {namespace}")
    datasets = len(set(data.subjects(RDF.type, DCAT.Dataset)))
    print(f"check_dcat: {violations} violation(s), {warnings} warning(s), {datasets} dataset(s)")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
