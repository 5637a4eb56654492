"""The made-up web site the generator's traffic visits.

A few thousand request targets in six groups (pages, static assets, API
reads and writes, health checks, scanner probes), a few thousand clients in
five classes (browsers, crawlers, API tools, one health checker, background
scanners), each with its own user agent, and the referers browsers send.
Everything is drawn from a seeded generator, so a seed gives one site.

Popularity follows Zipf's law within each group: a handful of targets and
clients make most of the traffic, as in real logs.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import numpy as np

# -- the groups a request target belongs to ---------------------------------

PAGE, STATIC, API_READ, API_WRITE, HEALTH, SCAN = range(6)
GROUP_NAMES = ("page", "static", "api_read", "api_write", "health", "scan")

# -- the classes of client ----------------------------------------------------

BROWSER, CRAWLER, TOOL, MONITOR, SCANNER = range(5)

#: Share of all (non-incident) requests each client class makes.
CLASS_SHARES = np.array([0.78, 0.08, 0.10, 0.035, 0.005])

#: Which target groups each class requests, and with what weight.
CLASS_GROUPS: dict[int, dict[int, float]] = {
    BROWSER: {PAGE: 0.35, STATIC: 0.47, API_READ: 0.15, API_WRITE: 0.03},
    CRAWLER: {PAGE: 1.0},
    TOOL: {API_READ: 0.78, API_WRITE: 0.22},
    MONITOR: {HEALTH: 1.0},
    SCANNER: {SCAN: 1.0},
}

#: How many distinct clients each class has.
CLASS_CLIENTS = {BROWSER: 3200, CRAWLER: 60, TOOL: 180, MONITOR: 1, SCANNER: 40}

ZIPF_EXPONENT = 1.1
#: Flatter for clients: the busiest browser makes about 2 % of requests, as a
#: large NAT gateway might; at 1.1 one home user would make a tenth of them.
CLIENT_ZIPF_EXPONENT = 0.7


def _words(text: str) -> tuple[str, ...]:
    """Words of a list written as text, which reads better than many quotes."""
    return tuple(text.split())


_WORDS = _words(
    "alpine amber atlas autumn basil birch breeze cactus canyon cedar cinder "
    "clover cobalt comet coral cotton crystal daisy delta desert ember falcon "
    "fern fjord forest garnet ginger glacier granite harbor hazel horizon indigo "
    "iris island jade juniper lagoon lantern lavender lemon linen maple marble "
    "meadow mesa mint moss nectar nova oasis olive onyx orchid pebble pepper "
    "pine plum prairie quartz raven reef river saffron sage sierra silver "
    "slate spruce summit sunset thistle tide timber topaz tulip tundra velvet "
    "walnut willow winter zephyr"
)

_CATEGORIES = _words(
    "shoes bags jackets shirts dresses watches jewelry hats scarves gloves socks "
    "belts sunglasses backpacks wallets boots sandals sneakers coats sweaters "
    "jeans shorts skirts suits ties umbrellas luggage outdoor kitchen garden"
)

_SCAN_TARGETS = _words(
    "/wp-login.php /wp-admin/ /wp-admin/admin-ajax.php /xmlrpc.php /.env "
    "/.env.production /.git/config /.git/HEAD /.svn/entries /.DS_Store "
    "/phpmyadmin/ /phpmyadmin/index.php /pma/ /admin.php /administrator/ "
    "/config.php /config.json /backup.zip /backup.sql /db.sql /dump.sql "
    "/.aws/credentials /.ssh/id_rsa /server-status /server-info /actuator/env "
    "/actuator/health /console/ /manager/html /solr/admin/info/system "
    "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php /cgi-bin/luci "
    "/cgi-bin/test.cgi /boaform/admin/formLogin /HNAP1/ /owa/auth/logon.aspx "
    "/autodiscover/autodiscover.xml /remote/login /global-protect/login.esp "
    "/sdk /evox/about /.well-known/security.txt /telescope/requests "
    "/_ignition/execute-solution /api/jsonws/invoke /shell.php /cmd.php "
    "/info.php /phpinfo.php /test.php /wp-content/plugins/revslider/readme.txt"
)

_BROWSER_AGENTS = (
    (
        0.30,
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    ),
    (
        0.12,
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    ),
    (
        0.14,
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    ),
    (
        0.13,
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
    ),
    (
        0.08,
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    ),
    (
        0.07,
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 "
        "Firefox/125.0",
    ),
    (
        0.06,
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67",
    ),
    (
        0.04,
        "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    ),
    (
        0.03,
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    ),
    (
        0.03,
        "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    ),
)

#: Crawlers and the address blocks they are known to crawl from.
_CRAWLERS = (
    (
        0.45,
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "66.249.64.0/20",
    ),
    (
        0.20,
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "157.55.39.0/24",
    ),
    (
        0.10,
        "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
        "5.255.253.0/24",
    ),
    (
        0.10,
        "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
        "54.36.148.0/24",
    ),
    (
        0.08,
        "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
        "185.191.171.0/24",
    ),
    (
        0.07,
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "69.171.224.0/19",
    ),
)

_TOOL_AGENTS = (
    (0.30, "okhttp/4.12.0"),
    (0.20, "python-requests/2.31.0"),
    (0.15, "Go-http-client/2.0"),
    (0.12, "curl/8.5.0"),
    (0.08, "axios/1.6.8"),
    (0.08, "PostmanRuntime/7.37.3"),
    (0.07, "Shop/3.14.2 (iPhone; iOS 17.4; Scale/3.00)"),
)

MONITOR_AGENT = "ELB-HealthChecker/2.0"

SCANNER_AGENTS = (
    "Mozilla/5.0 zgrab/0.x",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/81.0.4044.129 Safari/537.36",
    "python-requests/2.25.1",
    "Nuclei - Open-source project (github.com/projectdiscovery/nuclei)",
    "Go-http-client/1.1",
    "libwww-perl/6.72",
)

_EXTERNAL_REFERERS = (
    "https://www.google.com/",
    "https://www.bing.com/",
    "https://duckduckgo.com/",
    "https://t.co/",
    "https://www.facebook.com/",
    "https://www.reddit.com/",
    "android-app://com.google.android.gm/",
)

SITE = "https://www.example.com"
WWW_HOST = "www.example.com"
API_HOST = "api.example.com"


@dataclass(frozen=True)
class Targets:
    """Request targets: parallel arrays, one entry per target."""

    method: list[str]
    path: list[str]
    group: np.ndarray  # int8, one of PAGE … SCAN
    host: list[str]
    base_bytes: np.ndarray  # int64, typical response size of a 200

    def __len__(self) -> int:
        return len(self.path)


@dataclass(frozen=True)
class Clients:
    """Clients: parallel arrays, one entry per client."""

    ip: list[str]
    klass: np.ndarray  # int8, one of BROWSER … SCANNER
    agent: list[str]

    def __len__(self) -> int:
        return len(self.ip)


@dataclass(frozen=True)
class Site:
    """The whole vocabulary of one seed, with the sampling tables."""

    targets: Targets
    clients: Clients
    #: Per client class: candidate target indices and their probabilities.
    class_targets: dict[int, tuple[np.ndarray, np.ndarray]]
    #: Per client class: candidate client indices and their probabilities.
    class_clients: dict[int, tuple[np.ndarray, np.ndarray]]
    #: Referers browsers send: "-", external sites, then internal pages.
    referers: list[str]
    external_referers: int
    internal_referer_p: np.ndarray


def zipf_weights(count: int, exponent: float = ZIPF_EXPONENT) -> np.ndarray:
    """Probabilities of ranks 1..count under Zipf's law."""
    weights = 1.0 / np.arange(1, count + 1, dtype=np.float64) ** exponent
    normalized: np.ndarray = weights / weights.sum()
    return normalized


def build_site(rng: np.random.Generator) -> Site:
    """Draw one site: its targets, its clients and how they are sampled."""
    targets = _build_targets(rng)
    clients = _build_clients(rng)
    class_targets = {
        klass: _mix(targets.group, groups) for klass, groups in CLASS_GROUPS.items()
    }
    class_clients = {}
    for klass in CLASS_CLIENTS:
        members = np.flatnonzero(clients.klass == klass)
        class_clients[klass] = (
            members,
            zipf_weights(members.size, CLIENT_ZIPF_EXPONENT),
        )
    pages = [
        targets.path[i]
        for i in np.flatnonzero(targets.group == PAGE)[:200]
        if "?" not in targets.path[i]
    ]
    referers = ["-", *_EXTERNAL_REFERERS, *(SITE + page for page in pages)]
    return Site(
        targets=targets,
        clients=clients,
        class_targets=class_targets,
        class_clients=class_clients,
        referers=referers,
        external_referers=len(_EXTERNAL_REFERERS),
        internal_referer_p=zipf_weights(len(pages)),
    )


def _mix(group: np.ndarray, weights: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
    """Candidates from several groups: Zipf within a group, weighted across."""
    candidates = []
    probabilities = []
    for name, weight in weights.items():
        members = np.flatnonzero(group == name)
        candidates.append(members)
        probabilities.append(zipf_weights(members.size) * weight)
    p = np.concatenate(probabilities)
    return np.concatenate(candidates), p / p.sum()


def _slug(rng: np.random.Generator, words: int) -> str:
    return "-".join(rng.choice(_WORDS, size=words, replace=False))


class _TargetList:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, int, str, int]] = []
        self.seen: set[tuple[str, str]] = set()

    def add(self, method: str, path: str, group: int, size: float) -> None:
        if (method, path) in self.seen:
            return
        self.seen.add((method, path))
        host = API_HOST if group in (API_READ, API_WRITE) else WWW_HOST
        self.rows.append((method, path, group, host, max(int(size), 1)))


def _build_targets(rng: np.random.Generator) -> Targets:
    """Each group's targets, most popular first."""
    out = _TargetList()
    _add_pages(rng, out)
    _add_static(rng, out)
    _add_api(rng, out)
    for path, size in (("/health", 15), ("/healthz", 2), ("/metrics", 9120)):
        out.add("GET", path, HEALTH, size)
    for path in _SCAN_TARGETS:
        out.add("GET", path, SCAN, 0)
    for word in rng.permutation(_WORDS)[:60]:
        out.add("GET", f"/{word}.php", SCAN, 0)
        out.add("GET", f"/{word}/.env", SCAN, 0)
    methods, paths, groups, hosts, sizes = zip(*out.rows, strict=True)
    return Targets(
        method=list(methods),
        path=list(paths),
        group=np.array(groups, dtype=np.int8),
        host=list(hosts),
        base_bytes=np.array(sizes, dtype=np.int64),
    )


def _page_size(rng: np.random.Generator) -> float:
    return float(rng.lognormal(np.log(15_000), 0.5))


def _add_pages(rng: np.random.Generator, out: _TargetList) -> None:
    head = ("/", "/index.html", "/products", "/login", "/cart", "/robots.txt")
    for path in head:
        out.add("GET", path, PAGE, 68 if path == "/robots.txt" else _page_size(rng))
    rest: list[str] = [
        "/about",
        "/contact",
        "/pricing",
        "/signup",
        "/checkout",
        "/blog",
        "/sitemap.xml",
        "/account",
        "/account/orders",
        "/help",
    ]
    rest += [f"/products/{n}" for n in rng.choice(90_000, 1200, replace=False)]
    rest += [f"/blog/{_slug(rng, 3)}" for _ in range(300)]
    rest += [f"/category/{name}" for name in _CATEGORIES]
    rest += [f"/search?q={_slug(rng, 2).replace('-', '+')}" for _ in range(150)]
    rest += [f"/docs/{_slug(rng, 1)}/{_slug(rng, 2)}" for _ in range(120)]
    for index in rng.permutation(len(rest)):
        out.add("GET", rest[index], PAGE, _page_size(rng))


def _add_static(rng: np.random.Generator, out: _TargetList) -> None:
    def digest() -> str:
        return f"{int(rng.integers(1 << 32)):08x}"

    out.add("GET", f"/static/js/app.{digest()}.js", STATIC, 412_000)
    out.add("GET", f"/static/css/main.{digest()}.css", STATIC, 61_000)
    out.add("GET", f"/static/js/vendor.{digest()}.js", STATIC, 890_000)
    out.add("GET", "/favicon.ico", STATIC, 5430)
    assets: list[tuple[str, float]] = []
    for number in range(40):
        size = rng.lognormal(np.log(40_000), 0.8)
        assets.append((f"/static/js/chunk-{number}.{digest()}.js", size))
    for name in ("inter-400", "inter-600", "inter-700", "icons"):
        assets.append(
            (f"/static/fonts/{name}.woff2", rng.lognormal(np.log(40_000), 0.3))
        )
    for _ in range(400):
        extension = rng.choice(["jpg", "png", "webp", "svg"], p=[0.45, 0.2, 0.3, 0.05])
        size = rng.lognormal(np.log(80_000), 0.9)
        assets.append((f"/images/{_slug(rng, 2)}.{extension}", size))
    for index in rng.permutation(len(assets)):
        out.add("GET", assets[index][0], STATIC, assets[index][1])


def _add_api(rng: np.random.Generator, out: _TargetList) -> None:
    reads = ["/api/v1/cart", "/api/v1/session", "/api/v1/recommendations"]
    reads += [f"/api/v1/users/{n}" for n in rng.choice(500_000, 600, replace=False)]
    reads += [f"/api/v1/orders/{n}" for n in rng.choice(9_000_000, 400, replace=False)]
    reads += [f"/api/v1/products?page={n}" for n in range(1, 41)]
    reads += [f"/api/v1/search?q={_slug(rng, 1)}" for _ in range(60)]
    for path in reads[:3]:
        out.add("GET", path, API_READ, 900)
    for index in rng.permutation(len(reads) - 3) + 3:
        out.add("GET", reads[index], API_READ, 900)
    writes = [
        ("POST", "/api/v1/events"),
        ("POST", "/api/v1/cart/items"),
        ("POST", "/api/v1/auth/token"),
        ("POST", "/api/v1/orders"),
        ("POST", "/login"),
    ]
    writes += [("DELETE", f"/api/v1/cart/items/{n}") for n in rng.choice(99_999, 40)]
    writes += [("PUT", f"/api/v1/users/{n}") for n in rng.choice(500_000, 40)]
    for method, path in writes:
        out.add(method, path, API_WRITE, 250)


def _build_clients(rng: np.random.Generator) -> Clients:
    ips: list[str] = []
    classes: list[int] = []
    agents: list[str] = []
    taken: set[str] = set()

    def add(klass: int, ip: str, agent: str) -> None:
        if ip in taken:
            return
        taken.add(ip)
        ips.append(ip)
        classes.append(klass)
        agents.append(agent)

    browser_p = np.array([w for w, _ in _BROWSER_AGENTS])
    for _ in range(CLASS_CLIENTS[BROWSER]):
        _, browser = _BROWSER_AGENTS[
            rng.choice(len(browser_p), p=browser_p / browser_p.sum())
        ]
        ip = random_ipv6(rng) if rng.random() < 0.12 else random_ipv4(rng)
        add(BROWSER, ip, browser)
    crawler_p = np.array([w for w, _, _ in _CRAWLERS])
    for _ in range(CLASS_CLIENTS[CRAWLER]):
        _, crawler, block = _CRAWLERS[rng.choice(len(crawler_p), p=crawler_p)]
        add(CRAWLER, _address_in(rng, block), crawler)
    tool_p = np.array([w for w, _ in _TOOL_AGENTS])
    for _ in range(CLASS_CLIENTS[TOOL]):
        _, tool = _TOOL_AGENTS[rng.choice(len(tool_p), p=tool_p / tool_p.sum())]
        add(TOOL, random_ipv4(rng), tool)
    add(MONITOR, "10.0.3.17", MONITOR_AGENT)
    for _ in range(CLASS_CLIENTS[SCANNER]):
        add(SCANNER, random_ipv4(rng), str(rng.choice(SCANNER_AGENTS)))
    return Clients(ip=ips, klass=np.array(classes, dtype=np.int8), agent=agents)


#: First octets of busy public IPv4 space (no private, loopback or
#: documentation ranges), so addresses look like the Internet's.
_FIRST_OCTETS = np.array(
    _words(
        "2 5 23 24 31 37 41 45 46 47 49 50 62 66 67 68 69 70 71 72 73 74 75 76 "
        "77 78 79 80 81 82 83 84 85 86 87 88 89 90 91 92 93 94 95 98 99 101 "
        "103 104 105 106 107 108 109 110 111 112 113 114 115 116 117 118 119 "
        "120 121 122 123 124 125 151 176 177 178 179 180 181 182 183 185 186 "
        "187 188 189 190 191 193 194 195 196 197 200 201 202 212 213 217 218 "
        "219 220 221 222"
    ),
    dtype=np.int64,
)


def random_ipv4(rng: np.random.Generator) -> str:
    first = int(rng.choice(_FIRST_OCTETS))
    rest = rng.integers(0, 256, size=3)
    return f"{first}.{rest[0]}.{rest[1]}.{max(int(rest[2]), 1)}"


def random_ipv6(rng: np.random.Generator) -> str:
    """An address in a block ISPs hand out (2a00::/12 or 2600::/12)."""
    prefix = int(rng.choice([0x2A00, 0x2600])) + int(rng.integers(0, 16))
    groups = [prefix, *(int(g) for g in rng.integers(0, 1 << 16, size=7))]
    if rng.random() < 0.5:  # many hosts use small interface ids
        groups[4:7] = [0, 0, 0]
    value = 0
    for group in groups:
        value = (value << 16) | group
    return str(ipaddress.IPv6Address(value))


def _address_in(rng: np.random.Generator, block: str) -> str:
    network = ipaddress.ip_network(block)
    offset = int(rng.integers(1, network.num_addresses - 1))
    return str(network.network_address + offset)
