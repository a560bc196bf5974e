"""``vzcloud contacts``: list the address book, or the contacts matching a query."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from vzcloud.cli import EXIT_OK, add_command
from vzcloud.cli._common import connect, json_option, note, out, print_json, profile_option

if TYPE_CHECKING:
    from vzcloud.api.models import Contact

PAGE = 200


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "contacts", run, help="list contacts",
                    description="List the contacts of the address book (sorted by last name), "
                    "one per line: name, organisation, e-mail addresses and phone numbers.",
                    parents=[profile_option(), json_option()])
    p.add_argument("--query", metavar="TEXT",
                   help="only contacts matching every word of TEXT (names, e-mail, phone, ...)")


def contact_line(c: Contact) -> str:
    name = " ".join(part for part in (c.nameprefix, c.firstname, c.middlename, c.lastname,
                                       c.namesuffix) if part) or "(no name)"
    details = [c.orgname or ""]
    details += [str(e.get("address", "")) for e in c.email]
    details += [str(t.get("number", "")) for t in c.tel]
    return "  ".join([name, *(d for d in details if d)])


def run(args: argparse.Namespace) -> int:
    with connect(args) as cloud:
        contacts = list(cloud.iter_pages("contacts", count=PAGE, query=args.query,
                                         sort="lastname+asc"))
    if args.json:
        print_json([c.to_json() for c in contacts])
        return EXIT_OK
    for contact in contacts:
        out(contact_line(contact))
    if not contacts:
        note("no contacts match" if args.query else "the address book is empty")
    return EXIT_OK
