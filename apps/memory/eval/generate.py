#!/usr/bin/env python3
"""Generate the Codexion experience-memory retrieval benchmark (LoCoMo-style).

The dataset is written by the project itself: a small fictional company and the ~25
people around it, followed over ~14 months of conversations (sessions).  Each session
holds a handful of `episode` items (things said or done) plus `fact`, `note` and
`record` items (orders, invoices, tickets, ...).  People change their minds: they
switch drinks, move city, change employer, cancel trips.  Most items are background
and distractors (the same topics for many people, near-duplicate identifiers).

Questions come in three kinds, each with gold evidence ids known by construction:

* paraphrase - asks by meaning, sharing no content word with the gold text
  (the person's name aside);
* keyword    - identifiers and rare tokens (PO-2026-00417, TCK-5521, SKUs, IBANs);
* temporal   - "what did X prefer before switching to Y?" (with `as_of` just before
  the change) and "where does X live now?" (no `as_of`, gold = the newest items).

Deterministic and stdlib only: the same seed always writes byte-identical JSON.

    python3 apps/memory/eval/generate.py            # writes apps/memory/eval/dataset.json
    python3 apps/memory/eval/generate.py --out /tmp/d.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import random
import sys
import unicodedata
from pathlib import Path

SEED = 20250417
UTC = dt.timezone.utc
START = dt.datetime(2025, 1, 6, tzinfo=UTC)  # first session day
END = dt.datetime(2026, 2, 27, tzinfo=UTC)  # last session day
HERE = Path(__file__).resolve().parent

# ---------------------------------------------------------------------------------------
# People
# ---------------------------------------------------------------------------------------

# key, first name (as used in speech), surname, gender, full name override
PEOPLE = [
    ("maria", "María", "García", "f", None),
    ("lukas", "Lukas", "Müller", "m", None),
    ("sigridur", "Sigríður", "Ólafsdóttir", "f", None),
    ("lan", "Lan", "Nguyễn", "f", "Nguyễn Thị Lan"),
    ("kwame", "Kwame", "Mensah", "m", None),
    ("aiko", "Aiko", "Tanaka", "f", None),
    ("priya", "Priya", "Raghunathan", "f", None),
    ("olumide", "Olumide", "Adeyemi", "m", None),
    ("zofia", "Zofia", "Wiśniewska", "f", None),
    ("mateo", "Mateo", "Rossi", "m", None),
    ("chloe", "Chloé", "Lefèvre", "f", None),
    ("bjorn", "Björn", "Lindqvist", "m", None),
    ("fatima", "Fatima", "Al-Sayed", "f", None),
    ("dmitri", "Dmitri", "Volkov", "m", None),
    ("ines", "Inês", "Carvalho", "f", None),
    ("tomasz", "Tomasz", "Kowalczyk", "m", None),
    ("hannah", "Hannah", "O'Brien", "f", None),
    ("rafael", "Rafael", "Souza", "m", None),
    ("yasmin", "Yasmin", "Haddad", "f", None),
    ("eero", "Eero", "Virtanen", "m", None),
    ("meiling", "Mei-Ling", "Chen", "f", None),
    ("soren", "Søren", "Møller", "m", None),
    ("ayse", "Ayşe", "Yılmaz", "f", None),
    ("santiago", "Santiago", "Herrera", "m", None),
    ("noa", "Noa", "Ben-David", "f", None),
]


class Person:
    def __init__(self, key, first, last, g, full):
        self.key = key
        self.first = first
        self.last = last
        self.full = full or f"{first} {last}"
        self.g = g
        self.sessions: list[Session] = []
        self.attrs: dict[str, dict] = {}

    def ctx(self, rng: random.Random, full_prob: float = 0.2) -> dict:
        f = self.g == "f"
        name = self.full if rng.random() < full_prob else self.first
        return {
            "N": name,
            "Nfull": self.full,
            "first": self.first,
            "last": self.last,
            "he": "she" if f else "he",
            "He": "She" if f else "He",
            "him": "her" if f else "him",
            "his": "her" if f else "his",
            "His": "Her" if f else "His",
            "himself": "herself" if f else "himself",
            "parent": "mother" if f else "father",
            "hes": "she's" if f else "he's",
        }


class Session:
    def __init__(self, subject: str | None, start: dt.datetime):
        self.subject = subject
        self.start = start
        self.items: list[dict] = []  # key items in order; background is mixed in later
        self.id = ""


# ---------------------------------------------------------------------------------------
# Shared vocabulary
# ---------------------------------------------------------------------------------------

WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
SITES = ["Gdańsk", "Rotterdam", "Valencia", "Leipzig", "Aarhus", "Brno", "Tilburg", "Zaragoza"]
MODULES = ["accounts payable", "inventory", "payroll", "fixed assets", "procurement", "CRM",
           "warehouse management", "general ledger", "treasury", "sales orders", "returns",
           "budgeting"]
CUSTOMERS = ["Hollis & Crane", "Verdant Grocers", "Kubo Retail", "Altamira Hotels",
             "Northpoint Clinics", "Saffron Lane Foods", "Orla Outdoor", "Tessaract Labs",
             "Bramwell Schools", "Cindervale Brewing", "Pemberton Marine", "Quintal Farms"]
CURRENCIES = ["EUR", "EUR", "EUR", "SEK", "PLN", "GBP", "DKK", "USD"]
QUARTERS = ["Q1", "Q2", "Q3", "Q4"]

# Vendors of goods that purchase orders are raised for.
# name, country, IBAN BBAN length, products [(SKU, description, unit price)]
VENDORS = [
    ("Nordholm AB", "SE", 20, [
        ("HX-2210-BLK", "ergonomic mesh chair, black", 289.00),
        ("HX-2210-BLU", "ergonomic mesh chair, blue", 289.00),
        ("HX-2201-BLK", "task chair without armrests, black", 179.00),
        ("DK-1400-OAK", "sit-stand desk, oak top", 649.00),
        ("DK-1400-WHT", "sit-stand desk, white top", 629.00),
    ]),
    ("Baltic Seating UAB", "LT", 16, [
        ("BS-3300-GRY", "stacking chair, grey", 64.50),
        ("BS-3303-GRY", "stacking chair with arms, grey", 79.00),
        ("BS-7100-NAT", "canteen bench, natural beech", 310.00),
    ]),
    ("Ferro Fasteners GmbH", "DE", 18, [
        ("M8-40-A2", "hex bolt M8x40, stainless A2, box of 200", 38.40),
        ("M8-40-A4", "hex bolt M8x40, stainless A4, box of 200", 52.10),
        ("M6-25-ZN", "hex bolt M6x25, zinc plated, box of 500", 21.90),
        ("NW-M8-A2", "nylon lock nut M8, A2, box of 500", 27.30),
    ]),
    ("Iberia Packaging SL", "ES", 20, [
        ("CX-4030-DW", "double-wall carton 400x300x300, bundle of 25", 31.75),
        ("CX-4030-SW", "single-wall carton 400x300x300, bundle of 25", 19.80),
        ("PW-23-1500", "pallet stretch wrap 23 micron, 1500 m", 17.20),
        ("TP-48-BRN", "brown packing tape 48 mm, case of 36", 44.00),
    ]),
    ("Kaito Electronics BV", "NL", 14, [
        ("KS-880-HC", "handheld barcode scanner, healthcare grade", 412.00),
        ("KS-880-RG", "handheld barcode scanner, rugged", 455.00),
        ("BT-3400-LI", "spare scanner battery 3400 mAh", 39.90),
        ("CR-880-4S", "four-slot charging cradle", 189.00),
    ]),
    ("Polaris Labels Sp. z o.o.", "PL", 24, [
        ("LBL-102-152", "thermal labels 102x152 mm, roll of 500", 9.80),
        ("LBL-102-125", "thermal labels 102x125 mm, roll of 500", 9.10),
        ("RB-110-WAX", "wax ribbon 110 mm x 450 m", 12.60),
        ("LBL-57-32", "shelf-edge labels 57x32 mm, roll of 2000", 14.30),
    ]),
    ("Solent Paper Co", "GB", 14, [
        ("A4-80-FSC", "A4 copier paper 80 gsm, FSC, box of 5 reams", 23.50),
        ("A4-100-FSC", "A4 copier paper 100 gsm, FSC, box of 5 reams", 31.00),
        ("EN-C4-WHT", "C4 envelopes, white, box of 250", 28.90),
    ]),
    ("Helix IT Supplies BV", "NL", 14, [
        ("NB-14-G7", "14-inch business laptop, gen 7", 1149.00),
        ("NB-14-G6", "14-inch business laptop, gen 6, refurbished", 689.00),
        ("DS-USB4-2", "USB4 docking station", 219.00),
        ("MN-27-QHD", "27-inch QHD monitor", 289.00),
    ]),
    ("Veldt Industrial BV", "BE", 12, [
        ("SB-S3-42", "S3 safety boots, size 42", 74.00),
        ("SB-S3-43", "S3 safety boots, size 43", 74.00),
        ("HV-EN471-L", "hi-vis vest, size L", 6.40),
        ("GL-CUT5-9", "cut-level 5 gloves, size 9, pack of 12", 58.00),
    ]),
    ("Atlas Forklift Service A/S", "DK", 14, [
        ("FK-SVC-500", "forklift 500-hour service kit", 265.00),
        ("FK-TYR-SE15", "solid forklift tyre 15-inch", 198.00),
    ]),
]

# Service suppliers people choose between (the `supplier` change of mind).  Never used
# by purchase orders, so those records cannot answer these questions by accident.
SERVICE_CATEGORIES = [
    ("courier services", ["Swiftline Couriers", "Pelican Express", "Kurier Sieben", "Bluebird Dispatch"]),
    ("office cleaning", ["Sparkle & Co", "Brightmop Services", "Clearwater Facility", "Maison Propre"]),
    ("event catering", ["Marigold Catering", "Olive Branch Kitchen", "Fennel & Fig", "Tapas Móvil"]),
    ("translation", ["Lingua Bridge", "Wordsmith Partners", "Polyglot Studio", "Babel Desk"]),
    ("printing", ["Inkwell Print", "Pressroom 9", "Cobalt Litho", "Paperplane Print"]),
    ("temp staffing", ["Staffbridge", "Flexforce", "Harbour Temps", "Crew & Co"]),
]

EMPLOYERS = ["Nordvik Logistics", "Brightwater Foods", "Kestrel Dynamics", "Halvorsen & Partners",
             "Meridian Freight", "Aurelia Pharma", "Bluepeak Software", "Castellan Retail",
             "Tidewater Textiles", "Orbis Components", "Lumen Grid Energy", "Fjordline Seafood",
             "Sable & Finch Consulting", "Quillon Bank", "Vantara Health", "Ostara Robotics",
             "Greystone Insurance", "Pinecrest Hotels"]
ROLES = ["a procurement analyst", "an accounts-payable lead", "a warehouse supervisor",
         "a financial controller", "a data engineer", "an operations manager", "a payroll specialist",
         "a category buyer", "a credit controller", "a product owner", "a logistics planner",
         "a treasury analyst", "a customer-success manager", "an internal auditor",
         "a demand planner", "a quality engineer"]
DEPTS = ["finance", "logistics", "procurement", "operations", "sales", "IT"]
CITIES = ["Madrid", "Lisbon", "Porto", "Hamburg", "Munich", "Reykjavík", "Hanoi", "Accra", "Osaka",
          "Pune", "Lagos", "Kraków", "Turin", "Lyon", "Gothenburg", "Tbilisi", "Bristol", "Cork",
          "Curitiba", "Amman", "Tampere", "Taipei", "İzmir", "Bogotá", "Haifa", "Ghent", "Ljubljana",
          "Vienna", "Bilbao", "Edinburgh", "Tallinn", "Seville", "Utrecht", "Bergen", "Da Nang",
          "Wrocław", "Marseille", "Leeds", "Kumasi", "Nagoya"]
PROJECTS = ["Atlas", "Heron", "Lighthouse", "Quartz", "Borealis", "Cobalt", "Falcon", "Sextant",
            "Tidepool", "Marigold Rollout", "Keystone", "Aurora", "Pathfinder", "Granite",
            "Halcyon", "Lantern", "Mosaic", "Northstar"]

# ---------------------------------------------------------------------------------------
# Text helpers
# ---------------------------------------------------------------------------------------


def fill(tpl: str, ctx: dict) -> str:
    s = tpl.format(**ctx)
    s = re.sub(r"\s+", " ", s).strip()
    s = s.replace(" ,", ",").replace(" .", ".")
    return s[0].upper() + s[1:]


def fold(s: str) -> str:
    """Lowercase and strip diacritics (as SQLite's unicode61 remove_diacritics 2 does)."""
    s = unicodedata.normalize("NFKD", s.lower())
    return "".join(c for c in s if not unicodedata.combining(c)).replace("ı", "i").replace("ø", "o").replace("ð", "d")


def tokens(s: str) -> list[str]:
    return re.findall(r"[^\W_]+", fold(s))


STOP = set("""a about above after again against all also am an and any anything are as at be because been before
being below between both but by can could did do does doing done down during each else ever every few for from
further had has have having he her here hers herself him himself his how i if in into is it its itself just
kind let like lot make me might more most much must my myself no nor not now of off on once only or other our ours
out over own per quite rather really same she should so some something such tell than that the their theirs them
themselves then there these they this those through to too under until up us very was way we were what when where
whether which while who whom whose why will with would yet you your yours s t d ll re ve m
one two get gets got go goes going new thing things day days time know""".split())


def stem(t: str) -> str:
    for suf, rep in (("ies", "y"), ("ied", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", ""),
                     ("ly", ""), ("al", "")):
        if len(t) > len(suf) + 2 and t.endswith(suf):
            return t[: -len(suf)] + rep
    return t


def content_stems(s: str, exclude: set[str]) -> set[str]:
    return {stem(t) for t in tokens(s) if t not in STOP and t not in exclude and not t.isdigit()}


# ---------------------------------------------------------------------------------------
# Stable personal attributes: the targets of paraphrase questions
# ---------------------------------------------------------------------------------------

# Each attribute: tags, a pool of values (dicts), templates for the main item, optional
# templates for a second item saying the same thing, and query templates.  Queries are
# checked at generation time against every gold text (and its tags): no shared content
# word, the person's name aside.

PET_KINDS = [
    ("a beagle puppy", "beagle"), ("a tabby kitten", "tabby"), ("a rescue greyhound", "greyhound"),
    ("a Maine Coon", "Maine Coon"), ("a pair of budgerigars", "budgies"), ("a bearded dragon", "lizard"),
    ("a Pembroke corgi", "corgi"), ("a border collie", "collie"), ("a miniature dachshund", "dachshund"),
    ("a ragdoll kitten", "ragdoll"), ("a cockatiel", "cockatiel"), ("a Hermann's tortoise", "tortoise"),
    ("a whippet", "whippet"), ("a black Labrador", "Labrador"), ("a Siamese cat", "Siamese"),
    ("an African grey parrot", "parrot"), ("a Bernese mountain dog", "Bernese"),
    ("a lop-eared rabbit", "rabbit"), ("a Shiba Inu", "Shiba"), ("a Bengal cat", "Bengal"),
    ("a ferret", "ferret"), ("a standard poodle", "poodle"),
]
PET_NAMES = ["Pico", "Biscuit", "Nimbus", "Bramble", "Pixel", "Mochi", "Loki", "Paprika", "Waffles",
             "Sputnik", "Ziggy", "Cosmo", "Nutmeg", "Bilbo", "Freya", "Pumpkin", "Clementine", "Goose",
             "Hachi", "Bruno", "Pretzel", "Gizmo", "Dobby", "Marzipan", "Rocket"]

ALLERGENS = ["peanuts", "shellfish", "sesame", "tree nuts", "kiwi fruit", "celery", "mustard", "eggs",
             "soy", "lupin", "mango", "buckwheat", "sulphites", "crustaceans"]

SIB_REL_F = ["older sister", "twin sister", "younger sister"]
SIB_REL_M = ["younger brother", "older brother", "twin brother"]
SIB_NAMES_F = ["Elin", "Hana", "Marta", "Amélie", "Leila", "Beatriz", "Rina", "Malia", "Dara", "Ottilie"]
SIB_NAMES_M = ["Tomás", "Kofi", "Arjun", "Chidi", "Luca", "Oskar", "Pavel", "Emil", "Joaquín", "Teodor", "Ivo"]


def sibling_v(rng, used):
    if rng.random() < 0.5:
        rel, sib = rng.choice(SIB_REL_F), pick_unused(rng, SIB_NAMES_F, used, "sib")
    else:
        rel, sib = rng.choice(SIB_REL_M), pick_unused(rng, SIB_NAMES_M, used, "sib")
    return {"rel": rel, "sib": sib, "occ": pick_unused(rng, SIB_OCC, used, "occ")}
SIB_OCC = ["is studying medicine in Salamanca", "runs a small bakery in Galway", "works night shifts as a paramedic",
           "teaches chemistry at a secondary school", "flies long-haul routes as a commercial pilot",
           "plays semi-professional basketball", "works as a sommelier in a Michelin-starred restaurant",
           "is a structural engineer on a bridge project", "restores antique clocks for a living",
           "is finishing a doctorate in astrophysics", "manages a vineyard in the Douro valley",
           "works as a park ranger in the Highlands", "is a session drummer in Nashville",
           "designs video games in Montréal"]

KID_TPL = [
    "{N}'s little daughter {girl} just started primary school and already has opinions about the lunch menu.",
    "{N} is the {parent} of two boys, {boy} and {boy2}, who both play junior ice hockey.",
    "{N}'s young son {boy} lost his first tooth this week and wants the tooth fairy to pay in euros.",
    "{N} left early because {his} toddler {girl} had a fever and nursery wouldn't keep her.",
    "{N} is raising twins, {girl} and {boy}, who just turned six and demanded a dinosaur cake.",
    "{N} spent the weekend at a swimming gala cheering for {his} daughter {girl}.",
]
GIRL_NAMES = ["Ana", "Ingrid", "Sofia", "Noor", "Elsa", "Maya", "Lucía", "Zara", "Amira", "Hedda"]
BOY_NAMES = ["Milo", "Yusuf", "Leo", "Kai", "Theo", "Arvid", "Ravi", "Finn", "Mateus", "Oren", "Lars"]

INSTRUMENTS = [
    "plays the cello in an amateur orchestra that rehearses on Thursday nights",
    "has been taking jazz piano lessons for three years",
    "sings tenor in a community choir",
    "plays bass in a covers band that gigs in local pubs",
    "practises the violin every evening, a habit from childhood",
    "drums in a garage band with old school friends",
    "plays the accordion at every family wedding",
    "plays trumpet in the town brass band",
    "is teaching {himself} classical guitar from online videos",
    "sings alto in a chamber choir that tours every summer",
    "plays the oboe with a wind ensemble",
    "DJs vinyl sets at a bar on the first Friday of each month",
    "plays the ukulele badly but enthusiastically",
    "has a harp at home and performs at friends' weddings",
]

LANG = ["Portuguese", "Mandarin", "Arabic", "Japanese", "Polish", "Swahili", "Icelandic", "Italian",
        "Turkish", "Hebrew", "Vietnamese", "Finnish", "Greek", "Korean", "Yoruba", "Catalan", "Dutch",
        "Russian", "Hindi", "Twi"]

EDUCATION = [
    "did a PhD in marine biology at the University of Bergen",
    "trained as a chartered accountant in Dublin",
    "has a master's degree in supply-chain management from Erasmus in Rotterdam",
    "read philosophy at Edinburgh before drifting into logistics",
    "went to culinary school in Lyon before switching careers",
    "holds an engineering degree from the Technical University of Munich",
    "took an MBA at INSEAD while working full time",
    "graduated in economics from the University of Ghana",
    "studied mathematics in Kraków and still tutors on weekends",
    "spent four years at art school in Porto",
    "qualified as a pharmacist in Amman",
    "did a bachelor's in computer science at Aalto",
    "trained as a nurse in Manila before retraining in data analysis",
    "earned a law degree in Bogotá but never practised",
    "completed an apprenticeship as a cabinet maker in Bavaria",
]

BOOKS = [
    ("One Hundred Years of Solitude", "García Márquez"), ("The Left Hand of Darkness", "Le Guin"),
    ("Independent People", "Laxness"), ("Things Fall Apart", "Achebe"), ("Kitchen", "Yoshimoto"),
    ("The Remains of the Day", "Ishiguro"), ("Solaris", "Lem"), ("The Leopard", "Lampedusa"),
    ("Middlemarch", "Eliot"), ("The Master and Margarita", "Bulgakov"), ("Pachinko", "Min Jin Lee"),
    ("The Name of the Rose", "Eco"), ("Beloved", "Morrison"), ("The Book of Disquiet", "Pessoa"),
    ("Norwegian Wood", "Murakami"), ("Dune", "Herbert"),
]

CLUBS = ["Benfica", "Celtic", "Borussia Dortmund", "Galatasaray", "Boca Juniors", "Ajax", "Olympiacos",
         "Hajduk Split", "Napoli", "Flamengo", "Kaizer Chiefs", "Real Betis", "AIK", "Legia Warsaw",
         "Hearts of Oak", "Fenerbahçe"]

PHOBIAS = [
    "is terrified of flying and takes the train whenever {he} can",
    "is frightened of spiders and once abandoned a meeting room because of one",
    "has a real fear of heights and won't climb anything taller than a stepladder",
    "dreads lifts and climbs the stairs even to the ninth floor",
    "panics in deep water and never learned to swim properly",
    "is terrified of thunderstorms and hides under a blanket until they pass",
    "has a horror of needles and looks away during blood tests",
    "is frightened of big dogs since being bitten as a child",
    "gets claustrophobic in crowded trams and lifts",
]

# infinitive phrases: "{N}'s dream is to ..."
AMBITIONS = [
    "open a small bakery of {his} own", "sail a yacht across the Atlantic", "run a marathon on every continent",
    "publish a detective novel before turning forty", "retire early to a vineyard in the south",
    "qualify as a glider pilot", "walk the entire Camino de Santiago", "build a cabin by a lake with {his} own hands",
    "climb Kilimanjaro", "start a small animal sanctuary", "visit every national park in Europe",
    "open a jazz bar",
]

VOLUNTEER = [
    "volunteers at a food bank every other Saturday",
    "volunteers as a coach for an under-12 girls' football team",
    "volunteers at the children's hospital, reading to patients once a month",
    "volunteers with refugees, helping them with job applications",
    "volunteers on a crisis helpline, doing night shifts",
    "volunteers at a neighbourhood workshop, fixing bikes for free",
    "volunteers at the library, teaching older people how to use smartphones",
    "volunteers with a river clean-up group, picking litter",
    "volunteers as a mentor for first-generation students",
    "volunteers in the kitchen of a homeless shelter twice a month",
]

INJURIES = [
    "tore a knee ligament skiing and is still doing physio twice a week",
    "broke {his} wrist falling off a scooter and is typing one-handed",
    "hurt {his} back lifting boxes and uses a standing desk on doctor's orders",
    "had shoulder surgery and can't lift anything heavier than a laptop",
    "sprained an ankle on a hike and is hobbling around on crutches",
    "has tendinitis in {his} elbow and wears a brace at the keyboard",
    "is recovering from a slipped disc and can't sit for long",
    "fractured two ribs cycling and is off the rowing machine for months",
]

WIVES = ["Ilse", "Camila", "Amara", "Leah", "Mirela", "Sunita", "Wren", "Adaeze"]
HUSBANDS = ["Jonas", "Ruairí", "Bogdan", "Henrik", "Youssef", "Aleksander", "Pedro", "Kenji"]
PARTNER_JOBS = ["landscape architect", "midwife", "jazz saxophonist", "veterinary surgeon", "ferry captain",
                "primary-school teacher", "pastry chef", "software tester", "tax inspector",
                "stage lighting designer", "paediatric nurse", "bookbinder", "geologist", "firefighter"]


def spouse_v(rng, used):
    if rng.random() < 0.5:
        w, name = "wife", pick_unused(rng, WIVES, used, "partner")
    else:
        w, name = "husband", pick_unused(rng, HUSBANDS, used, "partner")
    return {"sw": w, "partner": name, "pjob": pick_unused(rng, PARTNER_JOBS, used, "pjob")}


CUISINES = [
    "would happily eat ramen every day of the week",
    "always picks Ethiopian injera and stews when it's {his} turn to choose lunch",
    "goes out of {his} way to eat proper Neapolitan pizza",
    "is obsessed with eating spicy Sichuan hotpot",
    "thinks no meal beats grilled sardines with boiled potatoes",
    "orders a lamb tagine whenever there's one on the menu",
    "could live on dim sum dumplings",
    "will cross town to eat Georgian khachapuri",
    "considers a Sunday roast dinner the best meal of the week",
    "could eat falafel wraps every single day",
    "makes sushi at home and eats it twice a week",
    "never says no to a steaming bowl of pho",
]

NICKNAMES = [("Skipper", "captained the five-a-side team to a title"), ("Spreadsheet", "rebuilt the forecast in one night"),
             ("The Oracle", "predicted the supplier bankruptcy"), ("Bolt", "sprinted for the last ferry"),
             ("Radar", "caught a duplicate payment nobody else saw"), ("Duchess", "wore a tiara to the audit kickoff"),
             ("Gadget", "fixed the forklift charger with a paperclip"), ("Mayor", "organised the whole street party"),
             ("Captain Cardboard", "reorganised the carton store single-handed"),
             ("Professor", "gave a forty-minute talk on pallet standards"),
             ("Night Owl", "answered a ticket at three in the morning"), ("Tornado", "cleared the invoice backlog in a day")]


def v_pet(rng, used):
    kinds = [k for k in PET_KINDS if k[0] not in used["pet"]]
    k = rng.choice(kinds)
    used["pet"].add(k[0])
    name = [n for n in PET_NAMES if n not in used["petname"]]
    n = rng.choice(name)
    used["petname"].add(n)
    return {"pet_a": k[0], "pet_s": k[1], "pet_bare": k[0].split(" ", 1)[1], "pname": n}


def pick_unused(rng, pool, used, cat):
    free = [x for x in pool if x not in used[cat]]
    if not free:
        free = list(pool)
    x = rng.choice(free)
    used[cat].add(x)
    return x


ATTRS = {
    "pet": {
        "tags": ["household"],
        "value": v_pet,
        "kind": "episode",
        "gold": [
            "{N} adopted {pet_a} last weekend and named it {pname}.",
            "{N} showed the team photos of {pname}, {pet_a} {he} took in from a shelter.",
            "After months of thinking about it, {N} finally got {pet_a}; its name is {pname}.",
            "{N} told {C} that {pname}, {his} {pet_bare}, chewed through a charging cable again.",
        ],
        "extra": [
            "{pname}, {N}'s {pet_s}, needed stitches after a scrape, so {he} left early for the vet.",
            "{N} is looking for someone to mind {pname} the {pet_s} during the trip next month.",
        ],
        "queries": [
            "What kind of animal does {N} keep?",
            "Does {N} have any pets?",
            "Which animal lives with {N}?",
            "Is {N} a dog person or a cat person, judging by what {he} owns?",
        ],
    },
    "allergy": {
        "tags": ["health"],
        "value": lambda rng, used: {"a": pick_unused(rng, ALLERGENS, used, "allergen")},
        "kind": "fact",
        "gold": [
            "{N} carries an EpiPen because of a severe allergy to {a}.",
            "{N} is allergic to {a}; even a trace sends {him} to hospital.",
            "{N} checks every label twice, since {a} give {him} hives.",
            "{N} reminded the caterer to keep {a} well away from {his} plate.",
        ],
        "extra": [
            "Booking note for the team dinner: no {a} anywhere near {N}'s order.",
            "{N} skipped the canapés at the launch party, worried about hidden {a}.",
        ],
        "queries": [
            "Is there any food that makes {N} seriously ill?",
            "What ingredients must we avoid when ordering lunch for {N}?",
            "Which foods are dangerous for {N} to eat?",
            "Anything {N} cannot eat for medical reasons?",
        ],
    },
    "sibling": {
        "tags": ["relatives"],
        "value": lambda rng, used: sibling_v(rng, used),
        "kind": "episode",
        "gold": [
            "{N}'s {rel} {sib} {occ}.",
            "{N} mentioned that {his} {rel}, {sib}, {occ}.",
            "{N} is visiting {his} {rel} {sib}, who {occ}.",
        ],
        "extra": ["{N} is proud of {sib}, {his} {rel}, who {occ}."],
        "queries": [
            "Does {N} have any siblings, and what do they do for a living?",
            "Tell me about {N}'s siblings.",
            "What job does {N}'s sibling have?",
        ],
    },
    "children": {
        "tags": ["relatives"],
        "value": lambda rng, used: {"girl": pick_unused(rng, GIRL_NAMES, used, "kid"),
                                    "boy": pick_unused(rng, BOY_NAMES, used, "kid"),
                                    "boy2": pick_unused(rng, BOY_NAMES, used, "kid"),
                                    "ktpl": rng.randrange(len(KID_TPL))},
        "kind": "episode",
        "gold": ["KID"],
        "extra": ["{N} is leaving early on {wd} for a parents' evening at {his} kids' school.",
                  "{N} took the afternoon off to watch {his} little one in the nursery nativity play."],
        "queries": [
            "Does {N} have kids?",
            "Is {N} a parent?",
            "Does {N} have any children?",
        ],
    },
    "music": {
        "tags": ["leisure"],
        "value": lambda rng, used: {"inst": pick_unused(rng, INSTRUMENTS, used, "inst")},
        "kind": "episode",
        "gold": ["{N} {inst}.", "Fun fact: {N} {inst}.", "{N} told {C} that {he} {inst}."],
        "extra": ["{N} is nervous about a solo at next month's concert and has been rehearsing every night."],
        "queries": [
            "Is {N} musical?",
            "Does {N} make music?",
            "What kind of music does {N} make?",
            "Which instrument does {N} play?",
        ],
    },
    "birthday": {
        "tags": ["profile"],
        "value": lambda rng, used: {"day": rng.randint(1, 28), "mon": rng.choice(MONTHS),
                                    "yr": rng.randint(1972, 1998)},
        "kind": "fact",
        "gold": ["{Nfull} was born on {day} {mon} {yr}.", "{N} came into the world on {day} {mon} {yr}."],
        "extra": [],
        "queries": [
            "When is {N}'s birthday?",
            "On what date do we celebrate {N}'s birthday?",
        ],
    },
    "languages": {
        "tags": ["profile"],
        "value": lambda rng, used: dict(zip(("l1", "l2"), rng.sample(LANG, 2))),
        "kind": "fact",
        "gold": [
            "{N} speaks fluent {l1} and gets by in {l2}.",
            "{N} grew up bilingual in {l1} and {l2}.",
            "{N} is taking evening classes in {l2}, on top of native {l1}.",
        ],
        "extra": [],
        "queries": [
            "Which languages does {N} know?",
            "What languages can {N} converse in?",
            "Is {N} multilingual?",
        ],
    },
    "education": {
        "tags": ["profile"],
        "value": lambda rng, used: {"edu": pick_unused(rng, EDUCATION, used, "edu")},
        "kind": "fact",
        "gold": ["{N} {edu}.", "Background: {N} {edu}."],
        "extra": [],
        "queries": [
            "What is {N}'s academic background?",
            "What degree does {N} have?",
            "What are {N}'s qualifications?",
            "What is {N}'s educational background?",
        ],
    },
    "book": {
        "tags": ["leisure"],
        "value": lambda rng, used: dict(zip(("book", "author"), pick_unused(rng, BOOKS, used, "book"))),
        "kind": "episode",
        "gold": [
            "{N} has reread the book '{book}' more times than {he} can count.",
            "{N} keeps a battered copy of the book '{book}' on {his} desk.",
            "{N} says the book '{book}' by {author} changed how {he} sees the world.",
        ],
        "extra": [],
        "queries": [
            "What is {N}'s favourite novel?",
            "Which novel does {N} love most?",
            "What should I gift {N}, who loves reading?",
        ],
    },
    "club": {
        "tags": ["leisure"],
        "value": lambda rng, used: {"club": pick_unused(rng, CLUBS, used, "club"), "since": rng.randint(1995, 2018)},
        "kind": "episode",
        "gold": [
            "{N} has held a football season ticket at {club} since {since}.",
            "{N} never misses a {club} football match, home or away.",
            "{N} was gloomy all Monday after {club} lost the football derby.",
        ],
        "extra": ["{N} booked a Monday off to travel to an away football game of {club}."],
        "queries": [
            "Which soccer club does {N} support?",
            "What soccer team does {N} cheer for?",
            "Which sports team is {N} a fan of?",
        ],
    },
    "phobia": {
        "tags": ["profile"],
        "value": lambda rng, used: {"ph": pick_unused(rng, PHOBIAS, used, "ph")},
        "kind": "episode",
        "gold": ["{N} {ph}.", "Worth knowing: {N} {ph}."],
        "extra": [],
        "queries": ["What is {N} scared of?", "Does {N} have any phobias?", "What frightens {N}?",
                    "Does {N} have any phobias or fears?"],
    },
    "ambition": {
        "tags": ["profile"],
        "value": lambda rng, used: {"amb": pick_unused(rng, AMBITIONS, used, "amb")},
        "kind": "episode",
        "gold": ["{N}'s dream is to {amb}.", "Over drinks, {N} admitted {his} big dream is to {amb}.",
                 "{N}'s big goal in life is to {amb}.", "{N}'s life ambition is to {amb}."],
        "extra": [],
        "queries": [
            "What are {N}'s long-term ambitions?",
            "What is {N}'s life goal?",
            "What is {N}'s dream?",
            "What does {N} hope to achieve someday?",
        ],
    },
    "volunteer": {
        "tags": ["community"],
        "value": lambda rng, used: {"vol": pick_unused(rng, VOLUNTEER, used, "vol")},
        "kind": "episode",
        "gold": ["{N} {vol}.", "{N} mentioned that {he} {vol}."],
        "extra": [],
        "queries": ["Does {N} do any charity work?", "What does {N} do for charity in {his} free time?",
                    "What charity does {N} help?"],
    },
    "injury": {
        "tags": ["health"],
        "value": lambda rng, used: {"inj": pick_unused(rng, INJURIES, used, "inj")},
        "kind": "episode",
        "gold": ["{N} {inj}.", "{N} explained that {he} {inj}."],
        "extra": ["{N} still has physiotherapy twice a week while {his} body heals."],
        "queries": ["Is {N} recovering from an injury?", "What injury is {N} dealing with?",
                    "How did {N} get hurt?"],
    },
    "spouse": {
        "tags": ["relatives"],
        "value": spouse_v,
        "kind": "episode",
        "gold": [
            "{N}'s {sw} {partner} works as a {pjob}.",
            "{N} and {his} {sw} {partner}, a {pjob}, just celebrated ten years of marriage.",
            "{N} married {partner}, a {pjob}, in a small ceremony by the sea.",
        ],
        "extra": [],
        "queries": ["Who is {N}'s spouse and what does that person do?", "Is {N} married, and to whom?",
                    "What does {N}'s spouse do for a living?", "What is the job of {N}'s husband or wife?"],
    },
    "cuisine": {
        "tags": ["leisure"],
        "value": lambda rng, used: {"cui": pick_unused(rng, CUISINES, used, "cui")},
        "kind": "episode",
        "gold": ["{N} {cui}.", "When it comes to food, {N} {cui}."],
        "extra": [],
        "queries": ["What's {N}'s favourite food?", "What cuisine does {N} enjoy most?",
                    "What food does {N} like best?"],
    },
    "nickname": {  # kept for keyword (rare-token) questions: MiniLM cannot link "nickname" to "calls X 'Bolt'"
        "paraphrase": False,
        "tags": ["profile"],
        "value": lambda rng, used: dict(zip(("nick", "why"), pick_unused(rng, NICKNAMES, used, "nick"))),
        "kind": "episode",
        "gold": ["Everyone on the floor calls {N} '{nick}' ever since {he} {why}.",
                 "'{nick}' is what the warehouse team shouts when {N} walks in, ever since {he} {why}."],
        "extra": [],
        "queries": ["What's {N}'s nickname?", "What nickname do colleagues use for {N}?",
                    "Does {N} have a nickname at work?"],
    },
}

# ---------------------------------------------------------------------------------------
# Changes of mind: the targets of temporal questions
# ---------------------------------------------------------------------------------------

OLD_DRINKS = [("double espresso with no sugar", "espresso"), ("oat-milk flat white", "flat white"),
              ("large americano with cold milk", "americano"), ("cortado", "cortado"),
              ("strong black tea with two sugars", "black tea"), ("cappuccino with extra foam", "cappuccino"),
              ("filter coffee, black", "filter coffee"), ("iced latte, even in winter", "iced latte"),
              ("Earl Grey with lemon", "Earl Grey"), ("mocha with whipped cream", "mocha")]
NEW_DRINKS = [("matcha latte", "matcha"), ("rooibos tea", "rooibos"), ("decaf americano", "decaf"),
              ("lemon and ginger tea", "lemon and ginger"), ("masala chai", "chai"),
              ("yerba mate", "mate"), ("green tea", "green tea"), ("chicory coffee", "chicory"),
              ("turmeric latte", "turmeric latte"), ("sparkling water with lime", "sparkling water")]
# activity, short name, where it happens
HOBBIES = [("pottery", "pottery", "a pottery class"), ("salsa dancing", "salsa", "salsa lessons"),
           ("rowing", "rowing", "a rowing club"), ("bouldering", "bouldering", "a bouldering gym"),
           ("life drawing", "life drawing", "a life-drawing class"),
           ("Brazilian jiu-jitsu", "jiu-jitsu", "a jiu-jitsu dojo"), ("trail running", "trail running", "a trail-running group"),
           ("hot yoga", "yoga", "a hot-yoga studio"), ("fencing", "fencing", "a fencing club"),
           ("improv theatre", "improv", "an improv course"), ("open-water swimming", "open-water swimming", "a sea-swimming group"),
           ("woodworking", "woodworking", "a woodworking course"), ("padel", "padel", "a padel league"),
           ("archery", "archery", "an archery club"), ("competitive chess", "chess", "a chess club")]
CARS = ["old Volvo estate", "Škoda Octavia", "red Fiat Panda", "Toyota Prius", "diesel Golf", "Renault Clio",
        "Mazda MX-5", "Peugeot 308", "Dacia Duster", "Kia Ceed"]
MODES = [("an e-bike", "riding an e-bike", "rides an e-bike"), ("train", "taking the train", "takes the regional train"),
         ("bus", "taking the bus", "takes the number 7 bus"), ("on foot", "walking", "walks"),
         ("cargo bike", "riding a cargo bike", "rides a cargo bike"), ("carpool", "carpooling", "shares a ride with a neighbour")]
CHANNELS = ["email", "phone calls", "Slack", "Teams chat", "Signal", "WhatsApp", "text messages"]
TRIP_DEST = ["Japan", "Patagonia", "Iceland", "Vietnam", "Morocco", "New Zealand", "Peru", "the Azores",
             "Sri Lanka", "Norway's Lofoten islands", "Georgia", "Namibia", "Sicily", "Montenegro", "Canada",
             "Jordan", "Scotland's Outer Hebrides", "Cuba", "Zanzibar", "Bhutan"]
TRIP_DUR = ["two weeks", "ten days", "three weeks", "a long weekend", "a week"]
CANCEL_REASONS = ["{his} mother is having surgery", "the airline rescheduled the flights twice",
                  "the year-end close needs everyone around", "{he} couldn't get the visa in time",
                  "the savings went into fixing the roof", "{his} passport expired", "the tour operator went bust"]
MOVE_REASONS = ["to be closer to {his} parents", "for {his} partner's new job", "because rents became absurd",
                "to get away from big-city noise", "to be nearer the new office", ""]


def drink_v(rng, used):
    o = pick_unused(rng, OLD_DRINKS, used, "olddrink")
    n = pick_unused(rng, NEW_DRINKS, used, "newdrink")
    return {"old": o[0], "olds": o[1], "new": n[0], "news": n[1], "old_a": article(o[0]), "new_a": article(n[0])}


def article(noun: str) -> str:
    return ("an " if noun[0].lower() in "aeiou" else "a ") + noun


def hobby_v(rng, used):
    a, b = rng.sample(HOBBIES, 2)
    return {"h1": a[0], "h1s": a[1], "h1v": a[2], "h2": b[0], "h2s": b[1], "h2v": b[2], "wd": rng.choice(WEEKDAYS)}


def commute_v(rng, used):
    m = rng.choice(MODES)
    return {"car": pick_unused(rng, CARS, used, "car"), "mode": m[0], "mode_ing": m[1], "mode_verb": m[2]}


def contact_v(rng, used):
    a, b = rng.sample(CHANNELS, 2)
    return {"ch1": a, "ch2": b}


def supplier_v(rng, used):
    cat, sup = rng.choice(SERVICE_CATEGORIES)
    a, b = rng.sample(sup, 2)
    return {"cat": cat, "s1": a, "s2": b}


def project_v(rng, used):
    a = pick_unused(rng, PROJECTS, used, "proj")
    b = pick_unused(rng, PROJECTS, used, "proj")
    return {"p1": a, "p2": b}


def travel_v(rng, used):
    a = pick_unused(rng, TRIP_DEST, used, "dest")
    b = rng.choice([d for d in TRIP_DEST if d != a])
    return {"dest": a, "dest2": b, "dur": rng.choice(TRIP_DUR), "cancel": rng.random() < 0.6,
            "reason_t": rng.choice(CANCEL_REASONS)}


def residence_v(rng, used):
    a = pick_unused(rng, CITIES, used, "city")
    b = pick_unused(rng, CITIES, used, "city")
    return {"A": a, "B": b, "reason_t": rng.choice(MOVE_REASONS), "district": rng.choice(
        ["old town", "harbour", "university", "riverside", "north", "market"])}


def employer_v(rng, used):
    a = pick_unused(rng, EMPLOYERS, used, "emp")
    b = pick_unused(rng, EMPLOYERS, used, "emp")
    r1, r2 = rng.sample(ROLES, 2)
    return {"E1": a, "E2": b, "role1": r1, "role2": r2, "dept": rng.choice(DEPTS)}


# Each slot: value maker; templates for the first state (episode, fact, reaffirmation),
# for the change (episode, new fact, later reaffirmation); questions before (with as_of)
# and now (without).
SLOTS = {
    "drink": {
        "value": drink_v,
        "tags": ["preference", "beverage"],
        "init": ["{N}'s usual drink at the café downstairs is {old_a}.",
                 "{N} can't start the day without {his} usual drink, {old_a}.",
                 "{N} ordered {old_a} again; {he} says it's the only drink that gets {him} going."],
        "init_fact": ["{N}'s usual drink: {old}."],
        "reaffirm": ["{N} joked that {his} {olds} habit costs more than {his} phone bill.",
                     "On the coffee run {N} stuck with {his} usual drink, {old_a}."],
        "change": ["{N} has given up {olds} and switched to {new} as {his} usual drink.",
                   "{N} said {hes} done with {olds}; {his} drink is {new} from now on, on {his} doctor's advice.",
                   "{N} surprised everyone by ordering {new_a} instead of the usual {olds}, and says the switch is permanent."],
        "new_fact": ["{N}'s usual drink is now {new}."],
        "post": ["{N} says switching to {news} has done wonders for {his} sleep."],
        "before_q": ["What did {N} drink before switching to {news}?",
                     "What was {N}'s usual drink before {he} moved on to {news}?",
                     "Before the {news}, what did {N} usually drink?"],
        "now_q": ["What does {N} drink these days?", "What is {N}'s usual drink now?",
                  "If I bring {N} a drink today, what should it be?"],
    },
    "residence": {
        "value": residence_v,
        "tags": ["home", "location"],
        "init": ["{N} renewed the lease on {his} home in {A}'s {district} district for another year.",
                 "{N} is hosting friends at {his} home in {A} this weekend.",
                 "{N} said the street where {he} lives in {A} gets noisy on market days."],
        "init_fact": ["{Nfull} lives in {A}."],
        "reaffirm": ["{N} repainted the kitchen of {his} home in {A} over the long weekend."],
        "change": ["{N} moved home from {A} to {B} {reason}.",
                   "{N} has packed up {his} life in {A} and now lives in {B}.",
                   "{N} just got the keys to a new home in {B}, leaving {A} behind."],
        "new_fact": ["{Nfull} now lives in {B}."],
        "post": [],
        "before_q": ["Where did {N} live before moving to {B}?",
                     "Which city was {N}'s home before {B}?",
                     "In which city did {N} live before relocating to {B}?"],
        "now_q": ["Where does {N} live now?", "Which city is {N}'s home now?",
                  "What city does {N} live in at the moment?"],
    },
    "employer": {
        "value": employer_v,
        "tags": ["career"],
        "init": ["{N} celebrated two years at {E1}, {his} employer, with cake for the {dept} team.",
                 "{N} said things are hectic at {his} employer, {E1}, ahead of the audit.",
                 "{N} is working as {role1} at {E1} and likes the company."],
        "init_fact": ["{Nfull}'s employer: {E1}, where {he} works as {role1}."],
        "reaffirm": ["{N} got a spot bonus from {his} employer, {E1}, for cleaning up the vendor master data."],
        "change": ["{N} resigned from {E1}; {his} new employer is {E2}, where {he} is {role2}.",
                   "{N} has left {E1} and joined a new company, {E2}, as {role2}.",
                   "{N} accepted an offer from {E2} and worked {his} last day at {his} old employer, {E1}, on Friday."],
        "new_fact": ["{Nfull}'s employer is now {E2}, where {he} works as {role2}."],
        "post": [],
        "before_q": ["Who was {N}'s employer before {E2}?",
                     "Which company did {N} work for before joining {E2}?",
                     "Before {E2}, which company employed {N}?"],
        "now_q": ["Who is {N}'s employer now?", "Which company does {N} work for now?",
                  "What is {N}'s current employer?"],
    },
    "travel": {
        "value": travel_v,
        "tags": ["travel", "plan"],
        "init": ["{N} booked a trip: {dur} in {dest} in {tmonth}.",
                 "{N} is planning a {tmonth} trip to {dest}, {dur}, and has already bought the flights.",
                 "{N} has a holiday in {dest} lined up for {tmonth}: {dur}, mostly hiking."],
        "init_fact": ["{N} plans a trip to {dest} in {tmonth}."],
        "reaffirm": ["{N} has been reading guidebooks about {dest} and practising a few phrases for the {tmonth} trip."],
        "change": [],  # written in make_changes: a cancellation or a new destination
        "new_fact": [],
        "post": [],
        "before_q": ["Where was {N} planning a trip in {tmonth} before the plans changed?",
                     "What trip did {N} have booked for {tmonth}?",
                     "Where was {N} supposed to go on holiday in {tmonth}?"],
        "now_q": ["Is {N}'s {tmonth} trip still happening?", "What's the status of {N}'s {tmonth} holiday plans?",
                  "Is {N} still going on the {tmonth} trip?"],
    },
    "hobby": {
        "value": hobby_v,
        "tags": ["leisure", "activity"],
        "init": ["{N} signed up for {h1v} on {wd} evenings; it's {his} new hobby.",
                 "{N} has been doing {h1} twice a week and loves it as a hobby.",
                 "{N} took up {h1} as a hobby this spring and goes every week."],
        "init_fact": ["{N}'s hobby: {h1}."],
        "reaffirm": ["{N} is still hooked on {h1s} and showed a video from the last session."],
        "change": ["{N} quit {h1v} and joined {h2v} instead; {h2s} is {his} hobby now.",
                   "{N} gave up on {h1s}; {he} says {h2} suits {him} better as a hobby.",
                   "{N} has swapped {h1} for {h2}."],
        "new_fact": ["{N}'s hobby is now {h2}."],
        "post": ["{N} can't stop talking about {h2s} and is already eyeing a competition."],
        "before_q": ["What hobby did {N} have before taking up {h2s}?",
                     "Which activity was {N} doing before switching to {h2s}?"],
        "now_q": ["What is {N}'s hobby these days?", "What does {N} do as a hobby now?"],
    },
    "commute": {
        "value": commute_v,
        "tags": ["transport"],
        "init": ["{N} commutes to the office in {his} {car} every day.",
                 "{N} drives in every morning in {his} {car}, even though parking is a nightmare.",
                 "{N} offered to give {C} a lift home, since {he} commutes in the {car} anyway."],
        "init_fact": ["{N} commutes by car ({car})."],
        "reaffirm": ["{N} finally found a parking spot for the {car} closer to the entrance."],
        "change": ["{N} sold the {car} and now {mode_verb} to work.",
                   "{N} got rid of the {car}; these days {he} {mode_verb} to the office.",
                   "{N} has stopped driving altogether and {mode_verb} instead of taking the {car}."],
        "new_fact": ["{N} commutes without a car now: {he} {mode_verb}."],
        "post": [],
        "before_q": ["How did {N} commute before {he} started {mode_ing}?",
                     "What car did {N} commute in before giving it up?"],
        "now_q": ["How does {N} commute now?", "How does {N} get to the office these days?"],
    },
    "contact": {
        "value": contact_v,
        "tags": ["communication"],
        "init": ["{N} prefers to be contacted on {ch1} and rarely answers anything else.",
                 "{N} asked us to keep everything on {ch1}, please, nothing before ten."],
        "init_fact": ["{N}'s preferred contact channel: {ch1}."],
        "reaffirm": [],
        "change": ["{N} asked us to stop using {ch1} and contact {him} on {ch2} instead.",
                   "{N} says {he} barely checks {ch1} any more; {ch2} is the way to contact {him} now."],
        "new_fact": ["{N}'s preferred contact channel is now {ch2}."],
        "post": [],
        "before_q": ["How did {N} prefer to be contacted before switching to {ch2}?",
                     "Which contact channel did {N} prefer before asking for {ch2}?"],
        "now_q": ["What's the best way to contact {N} now?", "How does {N} prefer to be contacted these days?"],
    },
    "supplier": {
        "value": supplier_v,
        "tags": ["vendor", "preference"],
        "init": ["{N} prefers to use {s1} for {cat}; the quality has been reliable.",
                 "{N} renewed the {cat} arrangement with {s1}, {his} preferred supplier, for another year."],
        "init_fact": ["{N}'s chosen supplier for {cat}: {s1}."],
        "reaffirm": ["{N} praised {s1} after they handled a last-minute {cat} request."],
        "change": ["After repeated late deliveries, {N} moved {cat} from {s1} to a new supplier, {s2}.",
                   "{N} dropped {s1} and now sources {cat} from {s2}."],
        "new_fact": ["{N}'s chosen supplier for {cat} is now {s2}."],
        "post": [],
        "before_q": ["Which supplier did {N} use for {cat} before moving to {s2}?",
                     "Who was {N}'s supplier for {cat} before {s2}?"],
        "now_q": ["Which supplier does {N} use for {cat} now?", "Who supplies {cat} for {N} these days?"],
    },
    "project": {
        "value": project_v,
        "tags": ["project"],
        "init": ["{N} leads the {p1} project and chairs its weekly stand-up.",
                 "{N} presented the roadmap of {his} project, {p1}, to the leadership team."],
        "init_fact": ["{Nfull} is the lead of project {p1}."],
        "reaffirm": ["{N} is buried in work on the {p1} project and asked not to be booked for anything else."],
        "change": ["{N} handed the {p1} project over to {C} and now leads the {p2} project.",
                   "{N} has rotated off project {p1}; {his} new focus is leading project {p2}."],
        "new_fact": ["{Nfull} is the lead of project {p2}."],
        "post": [],
        "before_q": ["Which project did {N} lead before {p2}?", "What project was {N} in charge of before taking over {p2}?"],
        "now_q": ["What project is {N} in charge of now?", "Which project does {N} lead at the moment?"],
    },
}

# ---------------------------------------------------------------------------------------
# Background episodes, notes and facts (distractors)
# ---------------------------------------------------------------------------------------

BG_WORK = [
    "{N} walked {C} through the month-end close checklist and flagged two accruals that looked off.",
    "{N} spent most of the afternoon merging duplicate customer records.",
    "{N} asked whether the {site} stock count could move to {wd}; {C} agreed.",
    "{N} reported that the VPN dropped three times during the supplier call.",
    "{N} reconciled the {vendor} statement and found a credit note nobody had applied.",
    "{N} shared a draft of the {q} budget with {C} for comments.",
    "{N} complained that the label printer in {site} keeps misfeeding.",
    "{N} sat in on a demo of the new {mod} dashboard and asked for an export button.",
    "{N} approved {n} timesheets before lunch.",
    "{N} chased {vendor} about a delivery that was promised for last {wd}.",
    "{N} and {C} argued about whether freight should be booked to cost of sales.",
    "{N} moved the payment run so it goes out on {wd}s from now on.",
    "{N} noticed the exchange-rate table hadn't refreshed overnight.",
    "{N} wrote up minutes from the {mod} steering meeting.",
    "{N} asked for read-only access to the {mod} module.",
    "{N} said the {q} forecast looks tighter than expected.",
    "{N} onboarded a temp for the {site} goods-in desk.",
    "{N} ran the ageing report and sent the ten most overdue accounts to {C}.",
    "{N} found {n} purchase requisitions stuck in approval.",
    "{N} rebooked the training room for {wd} morning.",
    "{N} proposed merging the two returns workflows into one.",
    "{N} fixed a typo in the customer-facing delivery note template.",
    "{N} double-checked the VAT codes on the latest {vendor} invoices.",
    "{N} mentioned the auditors arrive on {wd}.",
    "{N} set up a recurring reminder to review open credit notes.",
    "{N} paired with {C} to clean up the chart of accounts.",
    "{N} asked whether the bank reconciliation for the {cur} account could be automated.",
    "{N} escalated a pricing discrepancy with {cust}.",
    "{N} moved the quarterly review with {cust} to the following {wd}.",
    "{N} drafted a short guide on raising requisitions for new starters.",
    "{N} was out sick on {wd} and caught up on the backlog the next day.",
    "{N} joined the fire-warden training and now owns a yellow vest.",
    "{N} booked a meeting room for the {cust} kickoff.",
    "{N} tested the new barcode scanners at {site} and liked the battery life.",
    "{N} spotted that {n} pallets were booked to the wrong bin location in {site}.",
    "{N} asked {C} to cover the supplier hotline for a few days.",
    "{N} ran a quick survey about the hybrid-work schedule.",
    "{N} pointed out that the dunning letters still use last year's logo.",
    "{N} said the intercompany recharge for {month} still hasn't been posted.",
    "{N} handed the cycle-count results from {site} over to {C}.",
    "{N} cleaned up the shared drive and archived {n} old folders.",
    "{N} raised a concern about how long goods receipts take to post.",
    "{N} sent {cust} a revised quote with a {pct}% volume discount.",
    "{N} reviewed the {month} variance report line by line with {C}.",
    "{N} asked why the {mod} approval emails land in spam.",
    "{N} closed out {n} stale purchase orders from last year.",
    "{N} walked the {site} warehouse with the safety inspector.",
    "{N} rebuilt the pivot table for the {cust} margin analysis.",
    "{N} suggested a naming convention for cost centres.",
    "{N} flagged that {cust} is paying later every month.",
    "{N} agreed with {C} to split the {mod} migration into two phases.",
    "{N} requested a second monitor for the {site} dispatch desk.",
    "{N} hosted a lunch-and-learn on three-way matching.",
    "{N} confirmed the {q} stock valuation with the auditors.",
    "{N} sorted out a mix-up where two customers shared the same delivery address.",
    "{N} asked for the {mod} report to include a column for the cost centre.",
    "{N} spent an hour on hold with the bank about a blocked {cur} payment.",
    "{N} gave {C} feedback on the new supplier scorecard.",
    "{N} updated the holiday rota for the {site} team.",
    "{N} reminded everyone that expense claims close on the 25th.",
    "{N} tidied up the approval matrix so small orders skip the second sign-off.",
    "{N} sat through a long call with {cust} about damaged pallets.",
    "{N} signed off the {month} payroll after a last-minute correction.",
    "{N} took notes while {C} presented the warehouse KPI pack.",
    "{N} asked for a clearer dashboard of late deliveries per vendor.",
    "{N} suggested moving the stand-up to 9:15 so the {site} team can join.",
]
BG_LIFE = [
    "{N} said the neighbours have been renovating for weeks and the drilling starts at seven.",
    "{N} recommended a podcast about the history of shipping containers.",
    "{N} caught a cold and sounded hoarse on the call.",
    "{N} was excited about a documentary on deep-sea creatures.",
    "{N} said {his} phone screen cracked on the way in.",
    "{N} talked about repainting the hallway a darker green.",
    "{N} made a joke about the office plants needing a holiday.",
    "{N} bought a new keyboard and won't stop talking about the switches.",
    "{N} said the weekend was quiet and mostly spent doing laundry.",
    "{N} asked for restaurant ideas for a colleague's farewell.",
    "{N} slept badly because of the storm.",
    "{N} shared a photo of a ridiculous hat from a market stall.",
    "{N} has started a sourdough starter and checks on it hourly.",
    "{N} complained that the heating in the meeting room is broken again.",
    "{N} won the office quiz with a question about capital cities.",
    "{N} is trying to drink more water and set reminders on {his} watch.",
    "{N} said {he} binge-watched a crime series until two in the morning.",
    "{N} lost {his} umbrella for the third time this month.",
    "{N} brought home-made biscuits for the team.",
    "{N} is planning a small garden on {his} balcony.",
    "{N} mentioned a power cut in {his} building last night.",
    "{N} laughed about getting locked out of {his} own laptop.",
    "{N} is taking an online course in Excel power queries.",
    "{N} found a twenty-euro note in an old coat.",
    "{N} grumbled about the price of concert tickets.",
    "{N} is reorganising {his} bookshelf by colour, against all advice.",
    "{N} said the new coffee machine on the third floor is a big improvement.",
    "{N} is knitting a scarf and has been at it since autumn.",
    "{N} tried a new route for a walk at lunch and got lost.",
    "{N} described the chaos of assembling flat-pack furniture.",
]
FOLLOWUPS = [
    "It took longer than expected.", "{C} was copied in.", "Nobody objected.",
    "A follow-up is booked for next week.", "{He} sounded relieved afterwards.", "The rest of the call was routine.",
    "{He} promised to put the details in writing.", "There's no deadline yet.", "It's not urgent.",
    "{He} wants it sorted before the end of the month.", "That should unblock the {site} team.",
    "{C} will double-check the numbers.", "Everyone laughed.", "{He} seemed tired but upbeat.",
    "The topic will come up again at the retro.", "{C} offered to help.",
]
NOTES = [
    "Follow up with {N} about the {mod} access request next week.",
    "{N} prefers short summaries with the numbers first.",
    "Remind {N} to submit the {month} expense claims.",
    "{N} asked to be looped in on anything involving {cust}.",
    "Check with {N} whether the {site} stock count moved.",
    "{N} wants a heads-up before any change to the payment run.",
    "Send {N} the slides from the {mod} steering meeting.",
    "{N} is out of office the second half of {month}.",
    "{N} should review the supplier scorecard draft before it goes out.",
    "Ask {N} for the {q} numbers before the board pack is due.",
    "{N} owes {C} a reply about the warehouse KPI definitions.",
    "{N} likes agendas sent the day before a meeting.",
]
MISC_FACTS = [
    "{N}'s desk is on the {floor} floor, near the print room.",
    "{N} is the fire warden for the {floor} floor.",
    "{N} approves purchase requisitions up to {cur} {limit}.",
    "{N} is a first-aider for the {site} site.",
    "{N} is the {mod} key user for {his} team.",
    "{N} reports to {C}.",
    "{N}'s team sits next to the {site} dispatch liaison.",
]
OPS_NOTES = [
    "Reminder: the {q} close calendar moves the ledger lock to the {nth} working day.",
    "The {mod} module will be read-only during the upgrade on {wd} evening.",
    "Audit sample request: {n} supplier invoices from {month}.",
    "New rule: purchase orders over EUR 10,000 need a second approver.",
    "The {site} warehouse is closed for a stock count on {wd}.",
    "Bank holiday in {month}: the payment run goes out a day early.",
    "Supplier onboarding now requires a bank-detail call-back.",
    "Expense policy update: taxis only when public transport isn't viable.",
]

# ticket problem, possible resolutions
PROBLEMS = [
    ("label printer in {site} jams on {lsku} labels",
     ["wrong paper profile on the printer; fixed on site", "print head replaced by the vendor"]),
    ("cannot post the goods receipt for {po}",
     ["the order line was blocked for a price check; unblocked and reposted", "master data corrected and the receipt reposted"]),
    ("VAT code missing on {vendor} invoices",
     ["tax code added to the vendor master", "vendor re-issued the invoices with the right VAT code"]),
    ("scanner battery drains within two hours after the {ver} update",
     ["patched in {ver2}", "batteries replaced under warranty"]),
    ("login loop in the {mod} module",
     ["stale session cookie; cleared and the SSO setting fixed", "patched in {ver2}"]),
    ("duplicate payment proposal for {inv}",
     ["duplicate proposal deleted before the run", "the second proposal was reversed; no money left the bank"]),
    ("three-way match fails for {po} with a quantity variance",
     ["goods receipt corrected after a recount", "tolerance raised for the line after sign-off"]),
    ("price list for {sku} not updated in the catalogue",
     ["price list re-imported from the vendor file", "catalogue sync job restarted"]),
    ("exchange rate for {cur} missing on the payment run",
     ["rate feed restored and the run re-executed"]),
    ("warehouse handhelds show stale stock for {sku}",
     ["sync queue cleared; stock figures refreshed", "patched in {ver2}"]),
    ("dunning letter sent to {cust} despite payment",
     ["payment was unallocated; matched and an apology sent"]),
    ("approval email for {po} never arrived",
     ["mail relay was rejecting the sender; whitelisted", "approver delegation fixed"]),
    ("export times out for the {mod} ageing report",
     ["query index added; export now takes seconds", "workaround documented; permanent fix scheduled"]),
    ("barcode on {sku} cartons will not scan at {site}",
     ["supplier was printing the wrong symbology; new labels on the way", "scanner profile updated at the site"]),
    ("version {ver} crashes when printing a pick list at {site}",
     ["rolled back and then patched in {ver2}", "printer driver updated"]),
]
AIRLINES = [("LH", "Lufthansa"), ("TP", "TAP"), ("SK", "SAS"), ("FI", "Icelandair"), ("LO", "LOT"),
            ("KL", "KLM"), ("IB", "Iberia"), ("AY", "Finnair"), ("TK", "Turkish Airlines"), ("OS", "Austrian")]
AIRPORTS = ["Frankfurt", "Lisbon", "Copenhagen", "Reykjavík", "Warsaw", "Amsterdam", "Madrid", "Helsinki",
            "Istanbul", "Vienna", "Gdańsk", "Valencia", "Hamburg", "Porto", "Oslo"]
EXPENSE_WHAT = ["a taxi from the airport", "two nights at a business hotel", "a client dinner", "a train ticket",
                "a conference fee", "parking at the {site} site", "a working lunch with {cust}",
                "a replacement laptop charger", "mileage for a warehouse visit", "a visa application fee"]
ASSET_KIND = ["laptop", "monitor", "docking station", "phone", "handheld scanner", "tablet"]


# ---------------------------------------------------------------------------------------
# Identifier factories (unique, with deliberate near-duplicates)
# ---------------------------------------------------------------------------------------


class Ids:
    def __init__(self, rng):
        self.rng = rng
        self.used: set[str] = set()

    def take(self, s):
        if s in self.used:
            return None
        self.used.add(s)
        return s

    def make(self, fn):
        while True:
            s = self.take(fn())
            if s:
                return s

    def twin(self, s):
        """A near-duplicate of s: two digits of its last run swapped, or one changed."""
        runs = [m for m in re.finditer(r"\d+", s) if len(m.group()) >= 2] or list(re.finditer(r"[0-9A-Z]+", s))
        m = runs[-1]
        d = list(m.group())
        digits = "0123456789ABCDEF" if not m.group().isdigit() else "0123456789"
        for _ in range(20):
            dd = list(d)
            i = self.rng.randrange(len(dd) - 1)
            if dd[i] != dd[i + 1] and self.rng.random() < 0.7:
                dd[i], dd[i + 1] = dd[i + 1], dd[i]
            else:
                j = self.rng.randrange(len(dd))
                dd[j] = self.rng.choice([c for c in digits if c != dd[j]])
            t = s[: m.start()] + "".join(dd) + s[m.end():]
            if self.take(t):
                return t
        return None


def iban(rng, cc, n):
    if cc in ("NL", "GB"):
        bank = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(4))
        bban = bank + "".join(rng.choice("0123456789") for _ in range(n - 4 + (4 if cc == "GB" else 0)))
    else:
        bban = "".join(rng.choice("0123456789") for _ in range(n))
    num = "".join(str(int(ch, 36)) for ch in bban + cc + "00")
    return f"{cc}{98 - int(num) % 97:02d}{bban}"


# ---------------------------------------------------------------------------------------
# The generator
# ---------------------------------------------------------------------------------------


def rfc3339(t: dt.datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def money(x: float) -> str:
    return f"{x:,.2f}"


class Gen:
    def __init__(self, seed: int):
        self.seed = seed
        self.rng = random.Random(seed)
        self.people = [Person(*p) for p in PEOPLE]
        self.by_key = {p.key: p for p in self.people}
        self.sessions: list[Session] = []
        self.ids = Ids(self.rng)
        self.used = {k: set() for k in (
            "pet", "petname", "allergen", "sib", "occ", "kid", "inst", "edu", "book", "club", "ph", "amb", "vol",
            "inj", "partner", "pjob", "cui", "nick", "olddrink", "newdrink", "car", "proj", "dest", "city", "emp")}
        self.questions: list[dict] = []
        self.changes: list[dict] = []
        self.attr_instances: list[dict] = []

    # --- helpers ---------------------------------------------------------------------

    def other(self, p: Person) -> Person:
        return self.rng.choice([q for q in self.people if q is not p])

    def common(self, p: Person | None) -> dict:
        r = self.rng
        c = {
            "site": r.choice(SITES), "wd": r.choice(WEEKDAYS), "mod": r.choice(MODULES),
            "cust": r.choice(CUSTOMERS), "vendor": r.choice(VENDORS)[0], "q": r.choice(QUARTERS),
            "n": r.randint(3, 40), "pct": r.choice([3, 4, 5, 7, 8, 10, 12]), "month": r.choice(MONTHS),
            "cur": r.choice(CURRENCIES), "floor": r.choice(["second", "third", "fourth", "fifth"]),
            "limit": r.choice(["2,500", "5,000", "10,000", "25,000"]), "nth": r.choice(["third", "fourth", "fifth"]),
        }
        if p is not None:
            c.update(p.ctx(r))
            c["C"] = self.other(p).first
        else:
            c["C"] = r.choice(self.people).first
        return c

    def item(self, sess: Session, kind: str, text: str, tags: list[str], subject: str | None,
             prio: tuple[float, float] | None = None, pos: str = "end") -> dict:
        lo, hi = prio or {"episode": (0.2, 0.6), "fact": (0.6, 0.9), "note": (0.4, 0.7),
                          "record": (0.5, 0.8)}[kind]
        it = {"kind": kind, "text": text, "tags": sorted(set(tags)), "subject": subject,
              "priority": round(self.rng.uniform(lo, hi), 2), "_sess": sess}
        sess.items.append(it)
        return it

    # --- timeline ----------------------------------------------------------------------

    def make_sessions(self):
        r = self.rng
        days = (END - START).days
        for p in self.people:
            n = r.randint(14, 18)
            chosen: list[int] = []
            while len(chosen) < n:
                d = r.randrange(days + 1)
                if all(abs(d - c) >= 3 for c in chosen):
                    chosen.append(d)
            for d in sorted(chosen):
                start = START + dt.timedelta(days=d, hours=r.randint(8, 17), minutes=r.choice(range(0, 60, 5)))
                s = Session(p.key, start)
                p.sessions.append(s)
                self.sessions.append(s)
        # back-office sessions: invoices, vendor master data, releases
        self.ops: list[Session] = []
        d = 2
        while d <= days:
            start = START + dt.timedelta(days=d, hours=r.randint(7, 18), minutes=r.choice(range(0, 60, 5)))
            s = Session(None, start)
            self.ops.append(s)
            self.sessions.append(s)
            d += r.randint(6, 11)

    def ops_after(self, t: dt.datetime, min_days: int = 0) -> Session | None:
        for s in self.ops:
            if s.start >= t + dt.timedelta(days=min_days):
                return s
        return None

    # --- stable attributes -------------------------------------------------------------

    def make_attributes(self):
        r = self.rng
        names = sorted(ATTRS)
        for p in self.people:
            chosen = r.sample(names, r.randint(8, 10))
            for a in sorted(chosen, key=names.index):
                spec = ATTRS[a]
                v = spec["value"](r, self.used)
                ctx = self.common(p)
                ctx.update(v)
                for k in ("inst", "ph", "amb", "inj", "cui"):
                    if k in ctx:
                        ctx[k] = ctx[k].format(**ctx)
                sess_idx = r.randrange(len(p.sessions))
                tpl = r.choice(spec["gold"])
                if tpl == "KID":
                    tpl = KID_TPL[v["ktpl"]]
                gold = [self.item(p.sessions[sess_idx], spec["kind"], fill(tpl, ctx), spec["tags"], p.key)]
                if spec["extra"] and r.random() < 0.5:
                    later = r.randrange(sess_idx, len(p.sessions))
                    ctx2 = dict(ctx)
                    ctx2.update(p.ctx(r))
                    ctx2["N"] = ctx["N"] if r.random() < 0.5 else p.first
                    gold.append(self.item(p.sessions[later], r.choice(["note", "episode"]),
                                          fill(r.choice(spec["extra"]), ctx2), spec["tags"], p.key))
                p.attrs[a] = v
                self.attr_instances.append({"person": p, "attr": a, "gold": gold, "ctx": ctx})

    # --- changes of mind ---------------------------------------------------------------

    def make_changes(self):
        r = self.rng
        names = sorted(SLOTS)
        for p in self.people:
            k = r.choice([2, 3, 3, 3, 4])
            slots = r.sample(names, k)
            ns = len(p.sessions)
            for slot in sorted(slots, key=names.index):
                spec = SLOTS[slot]
                v = spec["value"](r, self.used)
                ctx = self.common(p)
                ctx.update(v)
                # first state early, change at least two sessions later
                i = r.randrange(0, int(ns * 0.6))
                j = r.randrange(i + 2, ns)
                si, sj = p.sessions[i], p.sessions[j]
                if slot == "travel":
                    m = (sj.start.month - 1 + r.randint(1, 3)) % 12
                    ctx["tmonth"] = MONTHS[m]
                if "reason_t" in ctx:
                    ctx["reason"] = ctx["reason_t"].format(**ctx)
                tags = spec["tags"] + [f"slot:{slot}"]
                before = [self.item(si, "episode", fill(r.choice(spec["init"]), ctx), tags, p.key)]
                if spec["init_fact"] and r.random() < 0.45:
                    before.append(self.item(si, "fact", fill(r.choice(spec["init_fact"]), ctx), tags, p.key))
                if spec["reaffirm"] and j - i >= 3 and r.random() < 0.3:
                    m_idx = r.randrange(i + 1, j)
                    before.append(self.item(p.sessions[m_idx], "episode", fill(r.choice(spec["reaffirm"]), ctx),
                                            tags, p.key))
                ctx_c = dict(ctx)
                ctx_c.update(p.ctx(r))
                ctx_c["C"] = ctx["C"]
                if slot == "travel":
                    if v["cancel"]:
                        tpl = r.choice(["{N} cancelled the {tmonth} trip to {dest}: {reason}.",
                                        "{N} called off the {tmonth} holiday in {dest} because {reason}.",
                                        "{N} has scrapped the {tmonth} trip; {reason}, so no {dest} this year."])
                    else:
                        tpl = r.choice(["{N} dropped the {dest} plan; the {tmonth} trip now goes to {dest2} instead.",
                                        "{N} swapped the {tmonth} holiday in {dest} for a trip to {dest2}, same dates."])
                else:
                    tpl = r.choice(spec["change"])
                after = [self.item(sj, "episode", fill(tpl, ctx_c), tags, p.key)]
                if spec["new_fact"] and r.random() < 0.4:
                    after.append(self.item(sj, "fact", fill(r.choice(spec["new_fact"]), ctx_c), tags, p.key))
                if spec["post"] and j + 1 < ns and r.random() < 0.25:
                    after.append(self.item(p.sessions[r.randrange(j + 1, ns)], "episode",
                                           fill(r.choice(spec["post"]), ctx_c), tags, p.key))
                self.changes.append({"person": p, "slot": slot, "ctx": ctx, "before": before, "after": after,
                                     "si": si, "sj": sj, "prev_session": p.sessions[j - 1]})

    # --- business records ----------------------------------------------------------------

    def make_records(self):
        r = self.rng
        ids = self.ids
        self.vendor_iban = {}
        self.po_list: list[dict] = []
        self.ticket_list: list[str] = []
        self.versions: list[str] = []
        self.serials: list[str] = []
        self.pnrs: list[str] = []
        self.flights: list[str] = []
        self.exp_list: list[str] = []
        self.ctr_list: list[str] = []
        self.inv_list: list[str] = []
        self.emp_list: list[str] = []

        # vendor master data (early ops sessions)
        for vi, (vname, cc, n, _) in enumerate(VENDORS):
            s = self.ops[vi % 6]
            ib = iban(r, cc, n)
            ids.take(ib)
            vid = ids.make(lambda: f"V-{r.randint(10000, 19999)}")
            self.vendor_iban[vname] = ib
            self.item(s, "record", fill(r.choice([
                "Vendor master {vid} ({v}): IBAN {ib}, payment terms net {t} days.",
                "New supplier {v} set up as {vid}; bank account {ib}, terms net {t}.",
            ]), {"vid": vid, "v": vname, "ib": ib, "t": r.choice([14, 30, 45, 60])}), ["vendor-master", "bank"], None)
        # bank-detail changes for some vendors
        for vname, cc, n, _ in r.sample(VENDORS, 5):
            s = r.choice(self.ops[8:-4])
            new = iban(r, cc, n)
            ids.take(new)
            p = r.choice(self.people)
            self.item(s, "record", fill(r.choice([
                "{v} changed bank details: IBAN {old} replaced by {new}; verified by call-back to {who}.",
                "Bank change for {v}: old IBAN {old}, new IBAN {new}. Call-back done by {who}.",
            ]), {"v": vname, "old": self.vendor_iban[vname], "new": new, "who": p.full}), ["vendor-master", "bank"],
                None)

        # software versions deployed to warehouse handhelds
        vers = []
        for major in (4, 5):
            for minor in range(9, 15) if major == 4 else range(0, 4):
                for patch in range(0, r.randint(2, 4)):
                    vers.append(f"{major}.{minor}.{patch}")
        self.versions = vers
        for ver in vers:
            s = r.choice(self.ops)
            ctx = self.common(None)
            ctx["ver"] = ver
            self.item(s, "record", fill(r.choice([
                "Handheld app {ver} rolled out to {n} scanners at {site}.",
                "Release {ver} of the warehouse app deployed to {site}; {n} devices updated overnight.",
                "Deployed scanner firmware bundle {ver} at {site} after a one-day pilot.",
            ]), ctx), ["release", "warehouse"], None)

        # employee numbers (one fact each) with near-duplicates between people
        prev = None
        for p in self.people:
            e = ids.twin(prev) if prev and r.random() < 0.5 else ids.make(lambda: f"E-{r.randint(10000, 99999)}")
            prev = e
            cc = ids.make(lambda: f"CC-{r.randint(1000, 9999)}")
            self.emp_list.append(e)
            self.item(p.sessions[0], "fact", fill("{Nfull}: employee number {e}, cost centre {cc}.",
                                                  {**p.ctx(r), "e": e, "cc": cc}), ["hr"], p.key)

        # purchase orders and invoices
        skus_by_vendor = {v[0]: v[3] for v in VENDORS}
        po_plan = []
        for p in self.people:
            for _ in range(r.randint(4, 7)):
                po_plan.append(p)
        r.shuffle(po_plan)
        for p in po_plan:
            s = r.choice(p.sessions)
            year = s.start.year
            po = ids.make(lambda: f"PO-{year}-{r.randint(100, 999):05d}")
            self._po(p, s, po, skus_by_vendor)
            if r.random() < 0.35:  # a near-duplicate order number for somebody else
                q = self.other(p)
                s2 = r.choice([x for x in q.sessions if x.start.year == year] or q.sessions)
                twin = ids.twin(po)
                if twin:
                    self._po(q, s2, twin, skus_by_vendor)

        # tickets
        for p in self.people:
            for _ in range(r.randint(2, 5)):
                self._ticket(p)
        # a few near-duplicate ticket numbers
        for t in r.sample(self.ticket_list, 20):
            tw = ids.twin(t)
            if tw:
                self._ticket(r.choice(self.people), tw)

        # expense claims
        for p in self.people:
            for _ in range(r.randint(1, 4)):
                s = r.choice(p.sessions)
                e = ids.make(lambda: f"EXP-{r.randint(20000, 49999)}")
                self.exp_list.append(e)
                ctx = self.common(p)
                ctx.update({"e": e, "amt": money(r.uniform(12, 900)), "what": r.choice(EXPENSE_WHAT).format(**ctx),
                            "city": r.choice(AIRPORTS)})
                self.item(s, "record", fill(r.choice([
                    "{e}: {Nfull} claimed {cur} {amt} for {what} in {city}.",
                    "Expense claim {e} from {Nfull}: {what}, {cur} {amt}. Receipt attached.",
                    "{Nfull} submitted {e} ({cur} {amt}) for {what}; approved by {C}.",
                ]), ctx), ["expense"], p.key)

        # travel bookings
        for p in self.people:
            for _ in range(r.randint(0, 3)):
                s = r.choice(p.sessions)
                code, airline = r.choice(AIRLINES)
                fl = ids.make(lambda: f"{code}{r.randint(100, 2999)}")
                pnr = ids.make(lambda: "".join(r.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(6)))
                a, b = r.sample(AIRPORTS, 2)
                when = s.start + dt.timedelta(days=r.randint(5, 40))
                self.pnrs.append(pnr)
                self.flights.append(fl)
                self.item(s, "record", fill(r.choice([
                    "Travel booking {pnr}: {Nfull}, {airline} {fl} {a} to {b} on {date}, seat {seat}.",
                    "Booked {Nfull} on {fl} ({airline}) from {a} to {b}, {date}; reference {pnr}.",
                ]), {"pnr": pnr, "Nfull": p.full, "airline": airline, "fl": fl, "a": a, "b": b,
                     "date": when.strftime("%-d %B %Y"), "seat": f"{r.randint(3, 32)}{r.choice('ACDF')}"}),
                    ["travel-booking"], p.key)

        # contracts
        for vname, *_ in VENDORS:
            if r.random() < 0.8:
                s = r.choice(self.ops)
                p = r.choice(self.people)
                c = ids.make(lambda: f"CTR-{s.start.year}-{r.randint(100, 299)}")
                self.ctr_list.append(c)
                until = s.start + dt.timedelta(days=r.choice([365, 730, 1095]))
                self.item(s, "record", fill(r.choice([
                    "{c}: framework agreement with {v}, valid until {u}, contract owner {who}.",
                    "Contract {c} signed with {v}; term ends {u}; owner {who}.",
                ]), {"c": c, "v": vname, "u": until.strftime("%-d %B %Y"), "who": p.full}), ["contract"], None)

        # asset assignments with serial numbers
        hexd = "0123456789ABCDEF"
        for p in self.people:
            for _ in range(r.randint(1, 2)):
                s = r.choice(p.sessions)
                sn = ids.make(lambda: "SN-" + "".join(r.choice(hexd) for _ in range(4)) + "-" +
                              "".join(r.choice(hexd) for _ in range(4)))
                self.serials.append(sn)
                kind = r.choice(ASSET_KIND)
                self.item(s, "record", fill(r.choice([
                    "Asset {sn} ({k}) assigned to {who}.",
                    "{who} received a {k}, serial {sn}; old device returned to IT.",
                ]), {"sn": sn, "k": kind, "who": p.full}), ["asset"], p.key)
                if r.random() < 0.25:
                    tw = ids.twin(sn)
                    q = self.other(p)
                    if tw:
                        self.serials.append(tw)
                        self.item(r.choice(q.sessions), "record",
                                  fill("Asset {sn} ({k}) assigned to {who}.", {"sn": tw, "k": kind, "who": q.full}),
                                  ["asset"], q.key)

    def _po(self, p: Person, s: Session, po: str, skus_by_vendor):
        r = self.rng
        vname = r.choice(list(skus_by_vendor))
        lines = r.sample(skus_by_vendor[vname], r.choice([1, 1, 1, 2]))
        cur = "EUR" if r.random() < 0.8 else r.choice(["SEK", "PLN", "DKK", "GBP"])
        total = 0.0
        parts = []
        for sku, desc, price in lines:
            qty = r.choice([2, 4, 5, 10, 12, 20, 24, 40, 50, 100])
            total += qty * price
            parts.append(f"{qty} x {sku} ({desc})")
        ctx = {"po": po, "who": p.full, "lines": " and ".join(parts), "v": vname, "cur": cur, "tot": money(total),
               "site": r.choice(SITES)}
        self.item(s, "record", fill(r.choice([
            "{po} raised by {who}: {lines} from {v}, total {cur} {tot}, deliver to {site}.",
            "Purchase order {po} for {v}: {lines}. Requested by {who}; {cur} {tot}.",
            "{who} ordered {lines} from {v} on {po} ({cur} {tot}), delivery to the {site} warehouse.",
        ]), ctx), ["purchase-order", "procurement"], p.key)
        self.po_list.append({"po": po, "person": p, "skus": [l[0] for l in lines], "vendor": vname, "session": s})
        # follow-up episode in a later session of the same person
        later = [x for x in p.sessions if x.start > s.start]
        if later and r.random() < 0.3:
            c = self.common(p)
            c.update({"po": po, "v": vname})
            self.item(r.choice(later), "episode", fill(r.choice([
                "{N} chased {v} about {po}; they promised delivery by {wd}.",
                "{N} asked {C} to split the delivery for {po} across two trucks.",
                "{N} noticed a quantity variance on {po} and put the invoice on hold.",
            ]), c), ["procurement"], p.key)
        # invoice in a back-office session a few days later
        if r.random() < 0.75:
            ops = self.ops_after(s.start, r.randint(4, 20))
            if ops:
                inv = self.ids.make(lambda: f"INV-{r.randint(10000, 99999)}")
                self.inv_list.append(inv)
                due = ops.start + dt.timedelta(days=r.choice([14, 30, 45]))
                self.item(ops, "record", fill(r.choice([
                    "{inv} from {v} for {po}: {cur} {tot}, due {due}.",
                    "{v} invoice {inv} ({cur} {tot}) matched to {po}; status {st}.",
                    "Received {inv} from {v} referencing {po}, {cur} {tot}; {st}.",
                ]), {**ctx, "inv": inv, "due": due.strftime("%-d %B %Y"),
                     "st": r.choice(["paid", "on hold for a price variance", "awaiting goods receipt",
                                     "scheduled for the next payment run"])}), ["invoice", "accounts-payable"], None)
                if r.random() < 0.12:  # a near-duplicate invoice number from another vendor
                    tw = self.ids.twin(inv)
                    o = self.ops_after(ops.start, r.randint(1, 30))
                    if tw and o:
                        v2 = r.choice([v for v in skus_by_vendor if v != vname])
                        self.inv_list.append(tw)
                        self.item(o, "record", fill("{inv} from {v}: {cur} {tot}, credit note for a returned pallet.",
                                                    {"inv": tw, "v": v2, "cur": "EUR", "tot": money(r.uniform(50, 900))}),
                                  ["invoice", "accounts-payable"], None)

    def _ticket(self, p: Person, number: str | None = None):
        r = self.rng
        t = number or self.ids.make(lambda: f"TCK-{r.randint(1000, 9999)}")
        self.ticket_list.append(t)
        idx = r.randrange(len(p.sessions))
        s = p.sessions[idx]
        c = self.common(p)
        po = r.choice(self.po_list)["po"] if self.po_list else "PO-2025-00100"
        sku = r.choice(r.choice(VENDORS)[3])[0]
        labels = [x[0] for x in VENDORS[5][3] if x[0].startswith("LBL")]
        c.update({"t": t, "po": po, "sku": sku, "lsku": r.choice(labels), "ver": r.choice(self.versions[:-1]),
                  "inv": r.choice(self.inv_list) if self.inv_list else "INV-10000"})
        c["ver2"] = self.versions[self.versions.index(c["ver"]) + 1]
        problem, fixes = r.choice(PROBLEMS)
        c["problem"] = problem.format(**c)
        c["res"] = r.choice(fixes).format(**c)
        c["prio"] = r.choice(["low", "normal", "normal", "high", "urgent"])
        self.item(s, "record", fill(r.choice([
            "{t} opened by {Nfull}: {problem}. Priority {prio}.",
            "Ticket {t} ({prio}) from {Nfull}: {problem}.",
            "{Nfull} logged {t}: {problem}; priority {prio}.",
        ]), c), ["ticket", "support"], p.key)
        later = p.sessions[idx + 1:]
        if later and r.random() < 0.3:
            self.item(r.choice(later), "episode", fill(r.choice([
                "{N} chased {t} again; still waiting on the vendor.",
                "{N} asked {C} to take over {t} while {he} is away.",
                "{N} added screenshots to {t} and bumped it to {prio}.",
            ]), c), ["ticket", "support"], p.key)
        if later and r.random() < 0.6:
            self.item(r.choice(later), "record", fill(r.choice([
                "{t} resolved: {res}.", "Closed {t}: {res}.", "{t} marked done by IT; {res}.",
            ]), c), ["ticket", "support"], p.key)

    # --- background ----------------------------------------------------------------------

    def make_background(self):
        r = self.rng
        for s in self.sessions:
            if s.subject is None:
                for _ in range(r.randint(0, 2)):
                    c = self.common(None)
                    self.item(s, "note", fill(r.choice(OPS_NOTES), c), ["ops"], None)
                continue
            p = self.by_key[s.subject]
            want = r.randint(3, 5)
            n_bg = max(1, want - len([i for i in s.items if i["kind"] == "episode"]))
            for _ in range(n_bg):
                c = self.common(p)
                if r.random() < 0.7:
                    text, tags = r.choice(BG_WORK), ["work"]
                else:
                    text, tags = r.choice(BG_LIFE), ["smalltalk"]
                t = fill(text, c)
                if tags == ["work"] and r.random() < 0.4:
                    t += " " + fill(r.choice(FOLLOWUPS), c)
                self.item(s, "episode", t, tags, p.key)
                s.items.insert(r.randrange(len(s.items)), s.items.pop())
            if r.random() < 0.35:
                self.item(s, "note", fill(r.choice(NOTES), self.common(p)), ["follow-up"], p.key)
            if r.random() < 0.12:
                self.item(s, "fact", fill(r.choice(MISC_FACTS), self.common(p)), ["org"], p.key)

    # --- finalise ----------------------------------------------------------------------

    def finalise(self):
        r = self.rng
        self.sessions.sort(key=lambda s: (s.start, s.subject or ""))
        for n, s in enumerate(self.sessions, 1):
            s.id = f"S-{n:04d}"
            t = s.start
            for it in s.items:
                it["_t"] = t
                t += dt.timedelta(minutes=r.randint(1, 6), seconds=r.randint(0, 59))
        items = [it for s in self.sessions for it in s.items]
        items.sort(key=lambda it: (it["_t"], it["_sess"].id))
        for n, it in enumerate(items, 1):
            it["id"] = f"mem-{n:05d}"
            it["occurred_at"] = rfc3339(it["_t"])
            it["session"] = it["_sess"].id
        self.items = items

    # --- questions ---------------------------------------------------------------------

    def q(self, kind, query, gold, as_of=None, filters=None):
        self.questions.append({"kind": kind, "query": query, "gold": gold, "as_of": as_of, "filters": filters})

    def name_tokens(self, p: Person) -> set[str]:
        return set(tokens(p.full)) | {p.key}

    def clean_query(self, p: Person, templates: list[str], gold: list[dict], ctx: dict) -> str | None:
        excl = self.name_tokens(p)
        g = set()
        for it in gold:
            g |= content_stems(it["text"] + " " + " ".join(it["tags"]), excl)
        opts = list(templates)
        self.rng.shuffle(opts)
        for tpl in opts:
            qctx = dict(ctx)
            qctx.update(p.ctx(self.rng, full_prob=0.05))
            q = fill(tpl, qctx)
            if not (content_stems(q, excl) & g):
                return q
        return None

    def make_paraphrase(self, target=100):
        r = self.rng
        by_person: dict[str, list] = {}
        for inst in self.attr_instances:
            by_person.setdefault(inst["person"].key, []).append(inst)
        picked = []
        for p in self.people:
            insts = list(by_person.get(p.key, []))
            r.shuffle(insts)
            got = 0
            for inst in insts:
                if got >= 4:
                    break
                if not ATTRS[inst["attr"]].get("paraphrase", True):
                    continue
                qtext = self.clean_query(p, ATTRS[inst["attr"]]["queries"], inst["gold"], inst["ctx"])
                if qtext:
                    picked.append((p, inst, qtext))
                    got += 1
        for p, inst, qtext in picked[:target]:
            filt = [["subject", "=", p.key]] if r.random() < 0.2 else None
            self.q("paraphrase", qtext, inst["gold"], None, filt)

    def make_temporal(self, target=100):
        r = self.rng
        ch = list(self.changes)
        r.shuffle(ch)
        for c in ch:
            p = c["person"]
            spec = SLOTS[c["slot"]]
            ctx = dict(c["ctx"])
            # as_of: after everything in the session before the change, before the change session
            last_before = max(it["_t"] for it in c["before"])
            prev_end = max(it["_t"] for it in c["prev_session"].items)
            lo = max(last_before, prev_end) + dt.timedelta(minutes=30)
            hi = c["sj"].start - dt.timedelta(minutes=30)
            as_of = lo + (hi - lo) * r.uniform(0.5, 0.98)
            ctx.update(p.ctx(r, full_prob=0.05))
            filt = [["subject", "=", p.key]] if r.random() < 0.2 else None
            self.q("temporal", fill(r.choice(spec["before_q"]), ctx), c["before"], rfc3339(as_of), filt)
            if r.random() < 0.62:
                ctx.update(p.ctx(r, full_prob=0.05))
                filt = [["subject", "=", p.key]] if r.random() < 0.2 else None
                self.q("temporal", fill(r.choice(spec["now_q"]), ctx), c["after"], None, filt)
        qs = [q for q in self.questions if q["kind"] == "temporal"]
        if len(qs) > target:
            drop = set(id(q) for q in qs[target:])
            self.questions = [q for q in self.questions if id(q) not in drop]

    def mentions(self, ident: str) -> list[dict]:
        pat = re.compile(r"(?<![\w.\-])" + re.escape(ident) + r"(?![\w\-]|\.\w)", re.IGNORECASE)
        return [it for it in self.items if pat.search(it["text"])]

    def make_keyword(self):
        r = self.rng
        plan = []  # (query, gold)

        def add(query, ident, subject=None, max_gold=3):
            g = self.mentions(ident)
            if subject is not None:
                g = [it for it in g if it["subject"] == subject]
            if 1 <= len(g) <= max_gold:
                plan.append((query, g))
                return True
            return False

        def take(pool, n, fmt, ident=lambda x: x):
            pool = list(pool)
            r.shuffle(pool)
            got = 0
            for x in pool:
                if got >= n:
                    break
                if add(fmt(x), ident(x)):
                    got += 1

        # purchase orders: prefer the ones that have a near-duplicate twin
        pos = sorted(self.po_list, key=lambda x: x["po"])
        po_ids = [x["po"] for x in pos]
        twinned = [x for x in po_ids if any(y != x and y[:-2] == x[:-2] for y in po_ids)]
        take(twinned, 12, lambda x: x)
        take([x for x in po_ids if x not in twinned], 4, lambda x: x)
        take(po_ids, 4, lambda x: r.choice(["who raised {}", "{} delivery", "status of {}", "{} vendor"]).format(x))
        take(self.inv_list, 8, lambda x: x)
        take(self.inv_list, 4, lambda x: r.choice(["{} due date", "is {} paid", "{} amount"]).format(x))
        take(self.ticket_list, 16, lambda x: r.choice(["{} status", "{}", "what happened with {}", "{} resolution"]).format(x),
             ident=lambda x: x)
        take(self.exp_list, 7, lambda x: r.choice(["{}", "expense claim {}"]).format(x))
        take(self.pnrs, 4, lambda x: r.choice(["booking {}", "booking reference {}", "{}"]).format(x))
        take(self.flights, 3, lambda x: r.choice(["flight {}", "who is on {}"]).format(x))
        take(self.ctr_list, 4, lambda x: r.choice(["{}", "contract {}"]).format(x))
        ibans = sorted(self.vendor_iban.values())
        take(ibans, 5, lambda x: r.choice(["IBAN {}", "{}", "which vendor has IBAN {}"]).format(x))
        take(self.serials, 5, lambda x: r.choice(["{}", "asset {}", "who has device {}"]).format(x))
        take(self.emp_list, 4, lambda x: r.choice(["employee {}", "{}"]).format(x))
        take(self.versions, 4, lambda x: r.choice(["version {}", "{} rollout", "release {}"]).format(x))
        # surname + SKU
        combos = []
        for po in pos:
            for sku in po["skus"]:
                combos.append((po["person"], sku))
        seen = []
        r.shuffle(combos)
        got = 0
        for p, sku in combos:
            if got >= 10:
                break
            if (p.key, sku) in seen:
                continue
            seen.append((p.key, sku))
            others = [x for x in pos if sku in x["skus"] and x["person"] is not p]
            if not others:
                continue
            if add(f"{p.last} {sku}", sku, subject=p.key):
                got += 1
        # rare tokens: pet names, nicknames
        rare = []
        for inst in self.attr_instances:
            if inst["attr"] == "pet":
                rare.append((inst["person"], inst["ctx"]["pname"], "{} the {}".format(inst["ctx"]["pname"],
                                                                                   inst["ctx"]["pet_s"])))
            if inst["attr"] == "nickname":
                rare.append((inst["person"], inst["ctx"]["nick"], "nickname {}".format(inst["ctx"]["nick"])))
        r.shuffle(rare)
        got = 0
        for p, tok, qtext in rare:
            if got >= 6:
                break
            if add(qtext, tok):
                got += 1
        for query, gold in plan:
            filt = None
            if all(g["kind"] == "record" for g in gold) and r.random() < 0.1:
                filt = [["kind", "=", "record"]]
            self.q("keyword", query, gold, None, filt)

    # --- output ------------------------------------------------------------------------

    def run(self) -> dict:
        self.make_sessions()
        self.make_attributes()
        self.make_changes()
        self.make_records()
        self.make_background()
        self.finalise()
        self.make_paraphrase()
        self.make_temporal()
        self.make_keyword()
        counters = {"paraphrase": 0, "keyword": 0, "temporal": 0}
        short = {"paraphrase": "para", "keyword": "kw", "temporal": "temp"}
        questions = []
        for q in self.questions:
            counters[q["kind"]] += 1
            questions.append({
                "id": f"q-{short[q['kind']]}-{counters[q['kind']]:03d}",
                "kind": q["kind"],
                "query": q["query"],
                "gold": sorted(it["id"] for it in q["gold"]),
                "as_of": q["as_of"],
                "filters": q["filters"],
            })
        items = [{k: it[k] for k in ("id", "kind", "text", "subject", "tags", "priority", "occurred_at", "session")}
                 for it in self.items]
        return {
            "version": 1,
            "seed": self.seed,
            "generated_by": "apps/memory/eval/generate.py",
            "description": (
                "Codexion experience-memory retrieval benchmark in the style of LoCoMo: ~14 months of "
                "conversations with 25 people at a fictional company (sessions of episodes plus facts, notes "
                "and business records), with changes of mind and many distractors. Questions are paraphrase, "
                "keyword (identifiers) and temporal (before a change, with as_of; or the current state); gold "
                "ids are known by construction. Metrics: recall@5, recall@10 and MRR. Written by the project "
                "itself; all people and companies are fictional."),
            "items": items,
            "questions": questions,
        }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--out", type=Path, default=HERE / "dataset.json")
    a = ap.parse_args(argv)
    data = Gen(a.seed).run()
    text = json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    a.out.write_text(text, encoding="utf-8")
    kinds = {}
    for q in data["questions"]:
        kinds[q["kind"]] = kinds.get(q["kind"], 0) + 1
    print(f"wrote {a.out}: {len(data['items'])} items, {len(data['questions'])} questions {kinds}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
