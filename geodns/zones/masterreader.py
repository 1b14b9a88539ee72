"""Read an RFC 1035 master file into a dnspython zone, reporting every bad record at once.

dnspython's reader parses each record (so the syntax accepted is dnspython's, as BIND, NSD and
Knot write it), but stops at the first error and opens a relative `$INCLUDE` from the current
directory. This reader runs dnspython's record parser line by line, notes each error with its
file, line, owner and type and goes on with the next record, and opens a relative `$INCLUDE`
from the directory of the file that includes it, as Knot does, so that the result does not
depend on where the command runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.name
import dns.rdataclass
import dns.tokenizer
import dns.transaction
import dns.ttl
import dns.zone
import dns.zonefile

# What an $INCLUDE saves and its end restores (RFC 1035 5.1: the origin, and with it the
# names and TTLs it implies, return to what they were). Not every dnspython has every one.
_INCLUDE_STATE = (
    "tok",
    "current_origin",
    "last_name",
    "last_ttl",
    "last_ttl_known",
    "default_ttl",
    "default_ttl_known",
    "default_ttl_from_soa",
)


@dataclass(frozen=True, slots=True)
class RecordError:
    """One problem in a master file: where, which record, what."""

    file: str
    line: int
    key: str  # "owner TYPE", or the directive
    message: str


class _Tokenizer(dns.tokenizer.Tokenizer):
    """A tokenizer that remembers the last token it gave and the words of the current record."""

    def __init__(self, file: Any, filename: str) -> None:
        super().__init__(file, filename)
        self.last: dns.tokenizer.Token | None = None
        self.words: list[dns.tokenizer.Token] = []
        self._plain_delimiters = self.delimiters

    def get(self, want_leading: bool = False, want_comment: bool = False) -> dns.tokenizer.Token:
        token = super().get(want_leading, want_comment)
        self.last = token
        self.words.append(token)
        return token

    def recover(self) -> None:
        """Start afresh after an error inside the tokenizer (an unclosed quote or parenthesis),
        which leaves it quoting or multi-line: what follows is read as new records."""
        self.quoting = False
        self.delimiters = self._plain_delimiters
        self.multiline = 0

    def unget(self, token: dns.tokenizer.Token) -> None:
        super().unget(token)
        self.last = None
        if self.words and self.words[-1] is token:
            self.words.pop()


@dataclass
class _Open:
    path: str  # as named, for messages
    real: str  # for loop detection
    handle: Any = field(repr=False)


class MasterReader(dns.zonefile.Reader):
    """dnspython's Reader, going on past bad records; `errors` holds what it found."""

    tok: _Tokenizer

    def __init__(self, path: str, handle: Any, txn: dns.transaction.Transaction) -> None:
        super().__init__(_Tokenizer(handle, path), dns.rdataclass.IN, txn, allow_include=True)
        self.errors: list[RecordError] = []
        self._files = [_Open(path, os.path.realpath(path), handle)]
        self._saved: list[dict[str, Any]] = []

    def read(self) -> None:
        while True:
            try:
                token = self.tok.get(True, True)
            except dns.exception.SyntaxError as exc:
                self._note(self.tok.line_number, "", exc)
                self.tok.recover()
                continue
            if token.is_eof():
                if not self._end_of_file():
                    return
                continue
            if token.is_eol():
                continue
            line = self.tok.line_number
            if token.is_comment():
                self.tok.get_eol()
                continue
            self.tok.words = [token]
            directive = (
                token.value.upper() if token.is_identifier() and token.value[:1] == "$" else ""
            )
            try:
                if directive:
                    self._directive(directive)
                else:
                    previous_owner = self.last_name
                    self.tok.unget(token)
                    self._rr_line()
            except dns.zonefile.UnknownOrigin:
                raise  # every record after would fail the same way: one clear error
            except dns.exception.DNSException as exc:
                # Skipped first: the rest of the line may name the type.
                broken = self._skip_record()
                self._note(line, directive or self._record_key(previous_owner), exc)
                if broken is not None and str(broken) != str(exc):
                    self._note(self.tok.line_number, "", broken)

    def _directive(self, directive: str) -> None:
        # As dnspython's Reader.read, but for $INCLUDE.
        if directive == "$TTL":
            token = self.tok.get()
            if not token.is_identifier():
                raise dns.exception.SyntaxError("bad $TTL")
            self.default_ttl = dns.ttl.from_text(token.value)
            self.default_ttl_known = True
            self.default_ttl_from_soa = False
            self.tok.get_eol()
        elif directive == "$ORIGIN":
            # A relative $ORIGIN is relative to the current origin (RFC 1035 section 5.1).
            origin = self.tok.get_name(self.current_origin)
            if not origin.is_absolute():
                raise dns.zonefile.UnknownOrigin
            self.current_origin = origin
            self.tok.get_eol()
            if self.zone_origin is None:
                self.zone_origin = origin
            self.txn._set_origin(origin)
        elif directive == "$INCLUDE":
            self._include()
        elif directive == "$GENERATE":
            self._generate_line()
        elif directive == "$UNICODE" and hasattr(self.txn, "add_unicode"):
            while not (token := self.tok.get()).is_eol_or_eof():
                if not token.is_identifier():
                    raise dns.exception.SyntaxError("bad $UNICODE")
                self.txn.add_unicode(token.value)
                if token.value == "2008":
                    self.tok.idna_codec = dns.name.IDNA_2008_Practical
                elif token.value == "2003":
                    self.tok.idna_codec = dns.name.IDNA_2003_Practical
        else:
            raise dns.exception.SyntaxError(f"unknown directive {directive}")

    def _include(self) -> None:
        token = self.tok.get()
        if not token.is_identifier() and not token.is_quoted_string():
            raise dns.exception.SyntaxError("$INCLUDE needs a file name")
        name = token.value
        token = self.tok.get()
        origin = self.current_origin
        if token.is_identifier():
            origin = dns.name.from_text(token.value, self.current_origin, self.tok.idna_codec)
            self.tok.get_eol()
        elif not token.is_eol_or_eof():
            raise dns.exception.SyntaxError("bad origin in $INCLUDE")
        path = os.path.join(os.path.dirname(self._files[-1].path), os.path.expanduser(name))
        real = os.path.realpath(path)
        for i, included in enumerate(self._files):
            if included.real == real:
                loop = " -> ".join([f.path for f in self._files[i:]] + [path])
                raise dns.exception.SyntaxError(f"include loop: {loop}")
        try:
            handle = open(path, encoding="utf-8")  # noqa: SIM115 - closed at its end of file
        except OSError as exc:
            raise dns.exception.SyntaxError(f"{path}: {exc.strerror or exc}") from None
        self._saved.append(
            {name: getattr(self, name) for name in _INCLUDE_STATE if hasattr(self, name)}
        )
        self._files.append(_Open(path, real, handle))
        self.tok = _Tokenizer(handle, path)
        self.current_origin = origin

    def _end_of_file(self) -> bool:
        """Close the file just read; False when it was the top one."""
        self._files[-1].handle.close()
        if len(self._files) == 1:
            return False
        self._files.pop()
        for name, value in self._saved.pop().items():
            setattr(self, name, value)
        return True

    def _skip_record(self) -> dns.exception.SyntaxError | None:
        """Read past the rest of the bad record, unless its end was what the error met; the
        tokenizer's own error if the rest cannot be read (an unclosed quote or parenthesis)."""
        tok = self.tok
        if tok.quoting:  # a quoted string met the end of its line, which ended the record
            tok.recover()
            return None
        if tok.last is not None and tok.last.is_eol_or_eof():
            if tok.last.is_eof():
                tok.unget(tok.last)
            return None
        while True:
            try:
                token = tok.get()
            except dns.exception.SyntaxError as exc:
                tok.recover()
                return exc
            if token.is_eol():
                return None
            if token.is_eof():
                tok.unget(token)
                return None

    def _record_key(self, previous_owner: dns.name.Name | None) -> str:
        """ "owner TYPE" of the record being read, as far as its words say."""
        words = [t for t in self.tok.words if not t.is_eol_or_eof()]
        if not words:
            return ""
        first, rest = words[0], words[1:]
        if first.is_whitespace():
            owner = previous_owner.to_text() if previous_owner is not None else ""
        else:
            try:
                owner = dns.name.from_text(first.value, self.current_origin).to_text()
            except dns.exception.DNSException:
                owner = first.value
        for word in rest:
            if not word.is_identifier():
                break
            try:
                dns.ttl.from_text(word.value)
                continue
            except dns.exception.DNSException:
                pass
            try:
                dns.rdataclass.from_text(word.value)
                continue
            except dns.exception.DNSException:
                pass
            return f"{owner} {word.value.upper()}"
        return owner

    def _note(self, line: int, key: str, exc: dns.exception.DNSException) -> None:
        message = str(exc) or "syntax error"
        if message == "RR class is not zone's class":
            message = "only class IN records are supported (geodns serves the Internet class)"
        self.errors.append(RecordError(self.tok.filename, line, key, message))
