"""The TFDV schema contract: the one parser of a ``tensorflow_metadata`` Schema in text format (pbtxt).

validate writes the schema, train reads it to define the model's inputs; both parse it here. The proto
package is imported inside the function (it comes with TFDV in the pipeline image).
"""

from __future__ import annotations

from kfp_tabular.components.common.errors import DataError


def parse_schema(text: str, where: str):
    """Parse a TFDV Schema text proto; ``where`` names the file or URI in the error.

    Raises:
        DataError: The text is not a Schema in protobuf text format.
    """
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = schema_pb2.Schema()
    try:
        text_format.Parse(text, schema)
    except text_format.ParseError as exc:
        raise DataError(f"{where}: expected a TFDV Schema in protobuf text format (pbtxt): {exc}") from exc
    return schema
