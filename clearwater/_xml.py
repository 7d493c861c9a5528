"""Parsing untrusted XML (TS 29.228 user data, homestead-prov bodies) safely.

:func:`parse_xml` runs expat with no DTD processing: a DOCTYPE or an entity declaration is
refused (so no entity is ever expanded or fetched: no "billion laughs", no external entities),
documents are size-limited and elements may nest at most :data:`MAX_XML_DEPTH` deep.
"""

from __future__ import annotations

from typing import Union
from xml.etree import ElementTree
from xml.parsers import expat

from clearwater.errors import ParseError

__all__ = ["MAX_XML_CHARS", "MAX_XML_DEPTH", "parse_xml"]

#: Largest document accepted, in characters (bytes: four times that, before decoding).
MAX_XML_CHARS = 1 << 20
#: Deepest element nesting accepted (TS 29.228 documents nest about 8 deep).
MAX_XML_DEPTH = 50


class _RefusedError(Exception):
    """Raised from inside expat's handlers to stop the parse."""


def parse_xml(data: Union[str, bytes], what: str) -> ElementTree.Element:
    """Parse one XML document; ParseError (``<what> XML too large``, ``Bad <what> XML: ...``)
    otherwise."""
    if len(data) > (4 * MAX_XML_CHARS if isinstance(data, bytes) else MAX_XML_CHARS):
        raise ParseError(what + " XML too large")
    parser = expat.ParserCreate()
    builder = ElementTree.TreeBuilder()

    def refuse(*args: object) -> None:
        raise _RefusedError("DOCTYPE and ENTITY declarations are not allowed")

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse  # type: ignore[assignment]  # stub: returns int
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.buffer_text = True
    depth = 0

    def start(tag: str, attributes: dict[str, str]) -> None:
        nonlocal depth
        depth += 1
        if depth > MAX_XML_DEPTH:
            raise _RefusedError("elements nested deeper than " + str(MAX_XML_DEPTH))
        builder.start(tag, attributes)

    def end(tag: str) -> None:
        nonlocal depth
        depth -= 1
        builder.end(tag)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
        return builder.close()
    except (_RefusedError, expat.ExpatError) as e:
        raise ParseError("Bad " + what + " XML: " + str(e)) from None
    except LookupError as e:  # a declared encoding Python does not know
        raise ParseError("Bad " + what + " XML: unknown encoding: " + str(e)) from None
    except (ValueError, AssertionError) as e:  # TreeBuilder on a truncated document
        raise ParseError("Bad " + what + " XML: " + (str(e) or "incomplete document")) from None
