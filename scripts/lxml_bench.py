#!/usr/bin/python3
"""Parse an AMR Manifest.xml with lxml.etree.iterparse, extracting the same
records and fields as pkg/sharepoint/manifest, for the side-by-side benchmark of
scripts/bench.sh. Memory stays flat: each SPObject is cleared once read and
its finished siblings are deleted.

Usage: lxml_bench.py [-repeat N] FILE  ->  one JSON line for the fastest of N
passes: bytes, records, seconds, cpu_seconds
"""
import json
import os
import re
import sys
import time
from datetime import datetime, timezone

from lxml import etree

NS = "{urn:deployment-manifest-schema}"
INT_ATTRS = {"ListItemIntId", "FileSize", "Level", "Author", "ModifiedBy", "IntId",
             "SetupPathVersion", "RoleId", "PrincipalId", "ObjectType"}
BOOL_ATTRS = {"IsGhosted", "InDocumentLibrary", "IsDeleted", "IsCatalog", "Hidden"}
TIME_ATTRS = {"TimeCreated", "TimeLastModified"}
ESCAPE = re.compile(r"_[xX]([0-9a-fA-F]{4})_")


def local(tag):
    return tag.rsplit("}", 1)[-1]


def convert(attrib):
    """Typed copy of an element's attributes, EncodedAttributes decoded."""
    out = {}
    encoded = set()
    if "EncodedAttributes" in attrib:
        encoded = {n.strip() for n in attrib["EncodedAttributes"].split(",")}
    for name, value in attrib.items():
        if name == "EncodedAttributes":
            continue
        if name in encoded:
            value = ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), value)
        if name in INT_ATTRS and value and value.lstrip("-").isdigit():
            value = int(value)
        elif name in BOOL_ATTRS:
            value = value.lower() in ("true", "1")
        elif name in TIME_ATTRS and value:
            value = datetime.fromisoformat(value).replace(tzinfo=timezone.utc)
        elif name == "Order" and value:
            value = float(value)
        out[name] = value
    return out


def entries(elem, container, child):
    """Converted attributes of elem/container/child elements."""
    found = []
    for c in elem:
        if local(c.tag) == container:
            found.extend(convert(e.attrib) for e in c if local(e.tag) == child)
    return found


def body(elem):
    name = local(elem.tag)
    rec = convert(elem.attrib)
    if name == "File":
        rec["versions"] = entries(elem, "Versions", "File")
        rec["properties"] = entries(elem, "Properties", "Property")
    elif name == "Folder":
        rec["properties"] = entries(elem, "Properties", "Property")
    elif name == "ListItem":
        rec["fields"] = entries(elem, "Fields", "Field")
        versions = []
        for c in elem:
            if local(c.tag) == "Versions":
                for v in c:
                    rv = convert(v.attrib)
                    rv["fields"] = entries(v, "Fields", "Field")
                    versions.append(rv)
        rec["versions"] = versions
    return rec


def parse_once(path):
    size = os.path.getsize(path)
    cpu0, t0 = time.process_time(), time.perf_counter()
    records = 0
    header = None
    for event, elem in etree.iterparse(path, events=("start", "end")):
        tag = local(elem.tag)
        if event == "start":
            if tag == "SPObject":
                header = convert(elem.attrib)
            continue
        parent = elem.getparent()
        ptag = local(parent.tag) if parent is not None else ""
        if ptag == "SPObject" and tag not in ("Roles", "RoleAssignments"):
            rec = {"header": header, "body": body(elem)}
            records += 1
        elif tag in ("RoleAssignment", "Role"):
            rec = convert(elem.attrib)
            rec["assignments"] = [convert(a.attrib) for a in elem if local(a.tag) == "Assignment"]
            records += 1
            elem.clear()
        elif tag == "SPObject" or (tag == "RoleAssignments" and ptag == "SPObjects"):
            elem.clear()
            while elem.getprevious() is not None:
                del parent[0]
    return {"bytes": size, "records": records,
            "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - cpu0}


def main():
    args = sys.argv[1:]
    repeat = 1
    if args[0] == "-repeat":
        repeat, args = int(args[1]), args[2:]
    runs = [parse_once(args[0]) for _ in range(max(1, repeat))]
    print(json.dumps(min(runs, key=lambda r: r["cpu_seconds"])))


if __name__ == "__main__":
    main()
