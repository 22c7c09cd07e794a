"""``talkbench weights list|import|fetch``: manage the local store of pretrained files (talkbench.weights)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register_weights_cli(sub: Any) -> None:
    w = sub.add_parser("weights", help="list, import or fetch pretrained weights (LPIPS, FID, SyncNet, ArcFace)")
    wsub = w.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    ls = wsub.add_parser("list", help="each weight file: present?, sha256, licence, where to get it")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=_list)
    im = wsub.add_parser("import", help="copy a local file into the store after checking its sha256")
    im.add_argument("name")
    im.add_argument("file")
    im.add_argument("--force", action="store_true", help="replace a file whose pinned hash differs")
    im.set_defaults(handler=_import)
    fe = wsub.add_parser("fetch", help="download from the published URL (needs network), then import")
    fe.add_argument("name")
    fe.add_argument("--timeout", type=float, default=60.0)
    fe.set_defaults(handler=_fetch)


def _list(args: argparse.Namespace) -> int:
    from talkbench import weights

    rows = weights.list_rows()
    if args.json:
        print(json.dumps({"store": str(weights.store_dir()), "weights": rows}, indent=2))
        return 0
    print(f"store: {weights.store_dir()}")
    for r in rows:
        short = (r["sha256"] or (f"{r['sha256_prefix']}..." if r.get("sha256_prefix") else "unpublished"))[:16]
        print(f"{r['name']:<20} {'present' if r['present'] else 'MISSING':<8} sha256 {short:<16} {r['licence']}")
        print(f"{'':<20} expected sha256: {_expected_hash(r)}")
        print(f"{'':<20} used by {r['used_by']}")
        print(f"{'':<20} get: {r['url'] or r['source']}")
        if not r["present"]:
            print(f"{'':<20} then: talkbench weights import {r['name']} FILE   (stored as {r['file']})")
    return 0


def _expected_hash(row: dict[str, Any]) -> str:
    """What a downloaded file's sha256 must be, and how sure that is (so a manual download can be checked)."""
    if row["sha256"]:
        how = {"published": "published", "pinned at import": "pinned when first imported here"}[row["sha256_source"]]
        return f"{row['sha256']} ({how})"
    if row.get("sha256_prefix"):
        return f"{row['sha256_prefix']}... (prefix published in the file name {row['file']}; checked on import)"
    return "no published hash: the first import pins it, later imports must match"


def _import(args: argparse.Namespace) -> int:
    from talkbench import weights

    dest = weights.import_weights(args.name, args.file, force=args.force)
    print(f"imported {args.name} -> {dest} (sha256 {weights.verified_sha256(args.name)})")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from talkbench import weights

    dest = weights.fetch(args.name, timeout_s=args.timeout)
    print(f"fetched {args.name} -> {dest}")
    return 0
