"""Real signed JSON Web Tokens (RFC 7519) through PyJWT, checked against the simulated clock.

:class:`TokenIssuer` signs tokens with HS256 (a shared secret) or RS256 (an RSA key pair, through
``cryptography``) carrying ``sub``, ``scope`` (space-separated, RFC 6749 §3.3), ``aud``, ``iss``,
``iat`` and ``exp``. :class:`TokenVerifier` checks one the way a server must:

* PyJWT verifies the signature with the **expected** algorithm only (never the one the token's
  header names), the audience, the issuer and that every required claim is present;
* the times (``exp``, ``nbf``, ``iat``) are checked here against the *simulated* clock, because
  PyJWT reads the wall clock; the rule is PyJWT's and RFC 7519's: refused when
  ``exp <= now - leeway`` (leeway 0 by default).

Simulated time ``t`` is Unix time ``EPOCH + t`` (the webhook components' epoch), so tokens
and signatures never depend on the real date and every run repeats. The HS256 secret is derived
from the run's seed; an RSA key is generated once per process (its bytes are random, but no
result depends on them: RS256 signatures are deterministic for a given key, and their length
is fixed by the key size).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import lru_cache

import jwt

from sim.components.webhook import EPOCH
from sim.core.errors import ParameterError

ALGORITHMS = ("HS256", "RS256")
ACCEPTED = "accepted"
#: Why a token is refused (the order in which they are checked).
REFUSALS = ("malformed", "wrong_algorithm", "bad_signature", "wrong_audience", "wrong_issuer", "missing_claim", "not_yet_valid",
            "issued_in_future", "expired")


@lru_cache(maxsize=None)
def _rsa_key(bits: int):
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def derive_secret(seed: int, name: str = "jwt") -> bytes:
    """A 32-byte HS256 secret from the run's seed (never from ``os.urandom``: runs repeat)."""
    return hashlib.sha256(f"jwt-secret:{seed}:{name}".encode()).digest()


@dataclass(frozen=True)
class Claims:
    """What a verified token says."""

    sub: str
    scopes: frozenset[str]
    exp: float
    """Expiry, in simulated seconds."""
    iat: float
    """Issue time, in simulated seconds."""

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


class TokenIssuer:
    """The identity provider: signs tokens for ``audience`` as ``issuer``."""

    def __init__(self, algorithm: str = "HS256", *, seed: int = 0, audience: str = "realtime-api",
                 issuer: str = "https://auth.example.test", rsa_bits: int = 2048) -> None:
        if algorithm not in ALGORITHMS:
            raise ParameterError("algorithm", f"must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
        self.algorithm = algorithm
        self.audience = audience
        self.issuer = issuer
        if algorithm == "HS256":
            self._signing_key = self.verification_key = derive_secret(seed)
        else:
            private = _rsa_key(rsa_bits)
            self._signing_key = private
            self.verification_key = private.public_key()
            """What a server needs to verify: the secret (HS256) or the public key (RS256)."""
        self.issued = 0

    def issue(self, sub: str, scopes: tuple[str, ...] | list[str] | str, now: float, ttl: float,
              *, audience: str | None = None, extra: dict | None = None) -> str:
        """A signed token for ``sub`` with ``scopes``, issued at simulated ``now``, valid ``ttl`` s."""
        if not ttl > 0:
            raise ParameterError("token_ttl", f"must be seconds > 0, got {ttl!r}")
        scope = scopes if isinstance(scopes, str) else " ".join(scopes)
        iat = EPOCH + int(math.floor(now))
        payload = {"sub": sub, "scope": scope, "aud": audience or self.audience, "iss": self.issuer,
                   "iat": iat, "exp": iat + int(math.ceil(ttl))}
        if extra:
            payload.update(extra)
        self.issued += 1
        return jwt.encode(payload, self._signing_key, algorithm=self.algorithm)


class TokenVerifier:
    """The server side: accepts only tokens signed with ``key`` by ``algorithm`` for ``audience``."""

    REQUIRED = ("sub", "scope", "exp", "iat", "aud")

    def __init__(self, key, algorithm: str = "HS256", *, audience: str = "realtime-api",
                 issuer: str | None = "https://auth.example.test", leeway: float = 0.0,
                 max_future_iat: float = 10.0) -> None:
        if algorithm not in ALGORITHMS:
            raise ParameterError("algorithm", f"must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
        if not (isinstance(leeway, (int, float)) and 0 <= leeway <= 180):
            raise ParameterError("leeway", f"must be seconds between 0 and 180 (RFC 7519: a few minutes), got {leeway!r}")
        self.key = key
        self.algorithm = algorithm
        self.audience = audience
        self.issuer = issuer
        self.leeway = float(leeway)
        self.max_future_iat = max_future_iat
        """Refuse tokens issued further than this in the future (FAPI guidance: 10 s)."""
        self.checks = 0
        self.refused: dict[str, int] = dict.fromkeys(REFUSALS, 0)

    def check(self, token: str | None, now: float) -> tuple[str, Claims | None]:
        """``(ACCEPTED, claims)`` or ``(reason, None)`` with a reason of :data:`REFUSALS`, at simulated ``now``."""
        self.checks += 1
        reason, claims = self._check(token, now)
        if claims is None:
            self.refused[reason] += 1
        return reason, claims

    def _check(self, token, now):
        if not isinstance(token, str) or not token:
            return "malformed", None
        options = {"verify_signature": True, "verify_exp": False, "verify_nbf": False, "verify_iat": False,
                   "verify_aud": True, "verify_iss": self.issuer is not None, "require": list(self.REQUIRED)}
        try:
            payload = jwt.decode(token, self.key, algorithms=[self.algorithm], audience=self.audience,
                                 issuer=self.issuer, options=options)
        except jwt.InvalidSignatureError:
            return "bad_signature", None
        except jwt.InvalidAlgorithmError:  # alg "none", or HS256 where RS256 is expected (key confusion)
            return "wrong_algorithm", None
        except jwt.InvalidAudienceError:
            return "wrong_audience", None
        except jwt.InvalidIssuerError:
            return "wrong_issuer", None
        except jwt.MissingRequiredClaimError:
            return "missing_claim", None
        except jwt.InvalidTokenError:  # DecodeError and the rest: not a well-formed JWS
            return "malformed", None
        unix_now = EPOCH + now
        try:
            exp, iat = int(payload["exp"]), int(payload["iat"])
            nbf = int(payload["nbf"]) if "nbf" in payload else None
        except (TypeError, ValueError, OverflowError):
            return "malformed", None
        if nbf is not None and nbf > unix_now + self.leeway:
            return "not_yet_valid", None
        if iat > unix_now + self.leeway + self.max_future_iat:
            return "issued_in_future", None
        if exp <= unix_now - self.leeway:  # RFC 7519 4.1.4, PyJWT's _validate_exp
            return "expired", None
        scope = payload["scope"]
        if not isinstance(scope, str):
            return "malformed", None
        return ACCEPTED, Claims(str(payload["sub"]), frozenset(scope.split()), float(exp - EPOCH), float(iat - EPOCH))
