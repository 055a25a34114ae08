"""Message Stream Encryption / Protocol Encryption (MSE/PE), sans-I/O.

The obfuscated handshake libtorrent, aria2 and transmission try before (or instead of) a
plain BitTorrent handshake: a Diffie-Hellman exchange over a fixed 768-bit prime, then an
RC4-obfuscated negotiation of the payload cipher. We offer and select *plaintext* whenever
the other side allows it (so the data path costs nothing); RC4 only when it insists.

Both sides are state machines: ``receive(bytes)`` in, ``data_to_send()`` out, ``done``
when negotiated. After that, ``result`` holds the chosen method, the payload bytes that
arrived already decoded (``initial_payload``: usually the peer's BitTorrent handshake) and,
for RC4, the two ciphers the connection must apply to every later byte in each direction.

Randomness (DH private key, pad lengths) comes from an injected ``random.Random``-like
object so tests are reproducible; production passes ``random.SystemRandom()``.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Optional, Protocol

__all__ = [
    "MseError", "CRYPTO_PLAINTEXT", "CRYPTO_RC4", "Rc4", "MseResult", "MseInitiator",
    "MseResponder", "is_plain_handshake", "PLAIN_PREFIX", "negotiate", "accept", "CRYPTO_NONE",
    "system_rng",
]

P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A"
    "08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9"
    "A63A36210000000000090563", 16)
G = 2
KEY_LEN = 96  # bytes of a DH public key on the wire
MAX_PAD = 512
VC = bytes(8)
CRYPTO_NONE = 0x00  # no MSE at all: a plain BitTorrent handshake came in
CRYPTO_PLAINTEXT = 0x01
CRYPTO_RC4 = 0x02
PLAIN_PREFIX = b"\x13BitTorrent protocol"
MAX_IA = 68 + 1024  # initial payload we accept: a handshake plus some messages
_PRIV_BITS = 160


class MseError(ValueError):
    """The peer broke the MSE protocol (typed, like wire.DecodeError: ``reason`` is short)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class RandomSource(Protocol):
    def getrandbits(self, k: int) -> int: ...
    def randint(self, a: int, b: int) -> int: ...


def _sha1(*parts: bytes) -> bytes:
    return hashlib.sha1(b"".join(parts)).digest()


class Rc4:
    """RC4 keystream (pure Python), first 1024 bytes discarded as MSE requires."""

    def __init__(self, key: bytes, drop: int = 1024) -> None:
        s = list(range(256))
        j = 0
        for i in range(256):
            j = (j + s[i] + key[i % len(key)]) & 0xFF
            s[i], s[j] = s[j], s[i]
        self._s = s
        self._i = 0
        self._j = 0
        if drop:
            self.crypt(bytes(drop))

    def crypt(self, data: bytes) -> bytes:
        """Encrypt or decrypt (the same operation), advancing the keystream."""
        s = self._s
        i = self._i
        j = self._j
        n = len(data)
        ks = bytearray(n)
        for k in range(n):
            i = (i + 1) & 0xFF
            si = s[i]
            j = (j + si) & 0xFF
            sj = s[j]
            s[i] = sj
            s[j] = si
            ks[k] = s[(si + sj) & 0xFF]
        self._i = i
        self._j = j
        # One big-integer XOR instead of n byte XORs: about 30% faster overall.
        return (int.from_bytes(data, "little") ^ int.from_bytes(ks, "little")).to_bytes(
            n, "little")


@dataclass
class MseResult:
    method: int  # CRYPTO_PLAINTEXT or CRYPTO_RC4 (CRYPTO_NONE: accept() saw no MSE)
    skey: bytes  # the infohash both sides proved to know
    initial_payload: bytes  # decoded payload bytes already received (IA and/or after)
    encryptor: Optional[Rc4]  # apply to every byte we send (None = plaintext)
    decryptor: Optional[Rc4]  # apply to every byte we receive (None = plaintext)

    def encrypt(self, data: bytes) -> bytes:
        return self.encryptor.crypt(data) if self.encryptor else data

    def decrypt(self, data: bytes) -> bytes:
        return self.decryptor.crypt(data) if self.decryptor else data


def is_plain_handshake(head: bytes) -> Optional[bool]:
    """True if the stream starts like a plain BitTorrent handshake, False if it cannot
    (so it may be MSE), None while fewer than 20 bytes make it undecidable."""
    n = min(len(head), len(PLAIN_PREFIX))
    if head[:n] != PLAIN_PREFIX[:n]:
        return False
    return True if n == len(PLAIN_PREFIX) else None


def _choose(provided: int, allow_plaintext: bool, allow_rc4: bool) -> int:
    if allow_plaintext and provided & CRYPTO_PLAINTEXT:
        return CRYPTO_PLAINTEXT
    if allow_rc4 and provided & CRYPTO_RC4:
        return CRYPTO_RC4
    raise MseError("no_common_crypto", f"peer provides {provided:#x}")


class _Dh:
    def __init__(self, rng: RandomSource) -> None:
        self.priv = rng.getrandbits(_PRIV_BITS) | (1 << (_PRIV_BITS - 1))
        self.pub = pow(G, self.priv, P).to_bytes(KEY_LEN, "big")

    def secret(self, their_pub: bytes) -> bytes:
        y = int.from_bytes(their_pub, "big")
        if not 1 < y < P - 1:
            raise MseError("bad_dh_key")
        return pow(y, self.priv, P).to_bytes(KEY_LEN, "big")


class _Machine:
    def __init__(self, rng: RandomSource, allow_plaintext: bool, allow_rc4: bool) -> None:
        if not (allow_plaintext or allow_rc4):
            raise ValueError("allow at least one of plaintext and RC4")
        self.rng = rng
        self.allow_plaintext = allow_plaintext
        self.allow_rc4 = allow_rc4
        self.dh = _Dh(rng)
        self._in = bytearray()
        self._out = bytearray()
        self.result: Optional[MseResult] = None
        self._pad_limit = KEY_LEN + MAX_PAD  # bytes we may scan before a sync marker
        self._step: Callable[[], bool] = self._noop

    @property
    def done(self) -> bool:
        return self.result is not None

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def receive(self, data: bytes) -> None:
        if self.result is not None:
            raise MseError("late_data", "handshake already finished")
        self._in += data
        while self.result is None and self._step():
            pass

    def _noop(self) -> bool:
        return False

    def _pad(self) -> bytes:
        return bytes(self.rng.randint(0, MAX_PAD // 4))  # short pads: it is obfuscation

    def _take(self, n: int) -> Optional[bytes]:
        if len(self._in) < n:
            return None
        out = bytes(self._in[:n])
        del self._in[:n]
        return out

    def _sync(self, marker: bytes, what: str) -> bool:
        """Drop bytes up to and including ``marker``; False until it has arrived."""
        pos = self._in.find(marker)
        if pos < 0:
            if len(self._in) > self._pad_limit + len(marker):
                raise MseError("no_sync", f"{what} not found within {self._pad_limit} bytes")
            return False
        del self._in[:pos + len(marker)]
        return True


class MseInitiator(_Machine):
    """Outgoing side (A). ``payload`` (our BitTorrent handshake) travels in the IA field."""

    def __init__(self, skey: bytes, payload: bytes, rng: RandomSource, *,
                 allow_plaintext: bool = True, allow_rc4: bool = True) -> None:
        super().__init__(rng, allow_plaintext, allow_rc4)
        if len(skey) != 20:
            raise ValueError("skey must be a 20-byte v1 infohash")
        if len(payload) > 0xFFFF:
            raise ValueError("initial payload too long")
        self.skey = skey
        self.payload = payload
        self._out += self.dh.pub + self._pad()
        self._step = self._read_yb

    def _read_yb(self) -> bool:
        yb = self._take(KEY_LEN)
        if yb is None:
            return False
        s = self.dh.secret(yb)
        self._enc = Rc4(_sha1(b"keyA", s, self.skey))
        self._dec = Rc4(_sha1(b"keyB", s, self.skey))
        provide = (CRYPTO_PLAINTEXT if self.allow_plaintext else 0) | (
            CRYPTO_RC4 if self.allow_rc4 else 0)
        pad_c = self._pad()
        plain = (VC + provide.to_bytes(4, "big") + len(pad_c).to_bytes(2, "big") + pad_c
                 + len(self.payload).to_bytes(2, "big") + self.payload)
        req2 = bytes(a ^ b for a, b in zip(_sha1(b"req2", self.skey), _sha1(b"req3", s)))
        self._out += _sha1(b"req1", s) + req2 + self._enc.crypt(plain)
        self._vc_marker = self._dec.crypt(VC)  # what B's encrypted VC looks like
        self._pad_limit = MAX_PAD  # PadB precedes it
        self._step = self._read_vc
        return True

    def _read_vc(self) -> bool:
        if not self._sync(self._vc_marker, "encrypted VC"):
            return False
        self._step = self._read_select
        return True

    def _read_select(self) -> bool:
        if len(self._in) < 6:
            return False
        head = self._dec.crypt(self._take(6) or b"")
        select = int.from_bytes(head[:4], "big")
        pad_len = int.from_bytes(head[4:], "big")
        if pad_len > MAX_PAD:
            raise MseError("bad_pad", f"padD of {pad_len} bytes")
        allowed = (CRYPTO_PLAINTEXT if self.allow_plaintext else 0) | (
            CRYPTO_RC4 if self.allow_rc4 else 0)
        if select not in (CRYPTO_PLAINTEXT, CRYPTO_RC4) or not select & allowed:
            raise MseError("bad_crypto_select", f"{select:#x}")
        self._select = select
        self._pad_d = pad_len
        self._step = self._read_pad_d
        return True

    def _read_pad_d(self) -> bool:
        pad = self._take(self._pad_d)
        if pad is None:
            return False
        self._dec.crypt(pad)
        rest = bytes(self._in)
        self._in.clear()
        rc4 = self._select == CRYPTO_RC4
        self.result = MseResult(
            method=self._select, skey=self.skey,
            initial_payload=self._dec.crypt(rest) if rc4 else rest,
            encryptor=self._enc if rc4 else None, decryptor=self._dec if rc4 else None)
        return False


class MseResponder(_Machine):
    """Incoming side (B), after the first bytes showed it is not a plain handshake
    (``is_plain_handshake``). ``skeys`` are the v1 infohashes we serve."""

    def __init__(self, skeys: Iterable[bytes], rng: RandomSource, *,
                 allow_plaintext: bool = True, allow_rc4: bool = True) -> None:
        super().__init__(rng, allow_plaintext, allow_rc4)
        self._by_req2: Dict[bytes, bytes] = {_sha1(b"req2", k): k for k in skeys}
        self._step = self._read_ya

    def _read_ya(self) -> bool:
        ya = self._take(KEY_LEN)
        if ya is None:
            return False
        if ya[:len(PLAIN_PREFIX)] == PLAIN_PREFIX:
            raise MseError("plain_handshake", "caller must check is_plain_handshake first")
        self._s = self.dh.secret(ya)
        self._out += self.dh.pub + self._pad()
        self._pad_limit = MAX_PAD  # PadA precedes req1
        self._step = self._read_req1
        return True

    def _read_req1(self) -> bool:
        if not self._sync(_sha1(b"req1", self._s), "HASH('req1', S)"):
            return False
        self._step = self._read_req2
        return True

    def _read_req2(self) -> bool:
        raw = self._take(20)
        if raw is None:
            return False
        req2 = bytes(a ^ b for a, b in zip(raw, _sha1(b"req3", self._s)))
        skey = self._by_req2.get(req2)
        if skey is None:
            raise MseError("unknown_infohash", "no torrent matches the obfuscated SKEY")
        self.skey = skey
        self._dec = Rc4(_sha1(b"keyA", self._s, skey))
        self._enc = Rc4(_sha1(b"keyB", self._s, skey))
        self._step = self._read_provide
        return True

    def _read_provide(self) -> bool:
        if len(self._in) < 14:
            return False
        head = self._dec.crypt(self._take(14) or b"")
        if head[:8] != VC:
            raise MseError("bad_vc")
        self._select = _choose(int.from_bytes(head[8:12], "big"),
                               self.allow_plaintext, self.allow_rc4)
        self._pad_c = int.from_bytes(head[12:14], "big")
        if self._pad_c > MAX_PAD:
            raise MseError("bad_pad", f"padC of {self._pad_c} bytes")
        self._step = self._read_ia_len
        return True

    def _read_ia_len(self) -> bool:
        if len(self._in) < self._pad_c + 2:
            return False
        raw = self._dec.crypt(self._take(self._pad_c + 2) or b"")
        self._ia_len = int.from_bytes(raw[-2:], "big")
        if self._ia_len > MAX_IA:
            raise MseError("bad_ia", f"initial payload of {self._ia_len} bytes")
        self._step = self._read_ia
        return True

    def _read_ia(self) -> bool:
        raw = self._take(self._ia_len)
        if raw is None:
            return False
        ia = self._dec.crypt(raw)
        pad_d = self._pad()
        self._out += self._enc.crypt(VC + self._select.to_bytes(4, "big")
                                     + len(pad_d).to_bytes(2, "big") + pad_d)
        rc4 = self._select == CRYPTO_RC4
        rest = bytes(self._in)
        self._in.clear()
        self.result = MseResult(
            method=self._select, skey=self.skey,
            initial_payload=ia + (self._dec.crypt(rest) if rc4 else rest),
            encryptor=self._enc if rc4 else None, decryptor=self._dec if rc4 else None)
        return False


# ---------------------------------------------------------------- asyncio helper


async def negotiate(machine: _Machine, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter, *, first: bytes = b"",
                    timeout: float = 30.0) -> MseResult:
    """Drive ``machine`` over a stream until done (``first``: bytes already read, e.g. the
    ones ``is_plain_handshake`` looked at). Raises MseError, asyncio.TimeoutError or
    ConnectionError; the caller closes the connection on any of them."""

    async def run() -> MseResult:
        if first:
            machine.receive(first)
        while True:
            out = machine.data_to_send()
            if out:
                writer.write(out)
                await writer.drain()
            if machine.result is not None:
                return machine.result
            data = await reader.read(4096)
            if not data:
                raise ConnectionError("peer closed during the MSE handshake")
            machine.receive(data)

    return await asyncio.wait_for(run(), timeout)


async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 skeys: Iterable[bytes], rng: RandomSource, *, allow_plaintext: bool = True,
                 allow_rc4: bool = True, allow_plain_handshake: bool = True,
                 timeout: float = 30.0) -> MseResult:
    """Incoming connection: a plain BitTorrent handshake (method CRYPTO_NONE, its first
    bytes in ``initial_payload``) or a full MSE handshake as responder."""
    head = b""
    while True:
        verdict = is_plain_handshake(head)
        if verdict is not None:
            break
        more = await asyncio.wait_for(reader.read(KEY_LEN - len(head)), timeout)
        if not more:
            raise ConnectionError("peer closed before its handshake")
        head += more
    if verdict:
        if not allow_plain_handshake:
            raise MseError("plaintext_refused", "encryption is required")
        return MseResult(CRYPTO_NONE, b"", head, None, None)
    machine = MseResponder(skeys, rng, allow_plaintext=allow_plaintext, allow_rc4=allow_rc4)
    return await negotiate(machine, reader, writer, first=head, timeout=timeout)


def system_rng() -> random.SystemRandom:
    return random.SystemRandom()
