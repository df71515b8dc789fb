"""A PFX is decrypted once per process: the stack loader, the program and the provider's check and diff
share the outcome, which holds neither the PFX, its password, nor the private key."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import dsa, ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

from providers.certificate import pfx as pfx_module
from providers.certificate.model import CertificateModel
from providers.certificate.pfx import PfxRefused, inspect_pfx, pfx_thumbprint
from providers.certificate.provider import CertificateProvider
from tests.providers.test_certificate_engine import PASSWORD, make_certificate, make_pfx, rsa_key
from tests.providers.test_certificate_engine import pfx_thumbprint as expected_thumbprint

CONNECTION = {"host": "agent01.contoso.test", "username": "deploy", "password": "Winrm-Passw0rd"}


@pytest.fixture
def decryptions(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes | None]]:
    """Every password cryptography is asked to decrypt a PFX with, in this test (the cache starts empty)."""
    asked: list[bytes | None] = []
    real = pkcs12.load_key_and_certificates

    def counting(data: bytes, password: bytes | None, *args: Any) -> Any:
        asked.append(password)
        return real(data, password, *args)

    pfx_module.clear_cache()
    monkeypatch.setattr(pkcs12, "load_key_and_certificates", counting)
    yield asked
    pfx_module.clear_cache()


def test_loader_program_check_and_diff_decrypt_a_pfx_once(decryptions: list[bytes | None]) -> None:
    pfx = make_pfx(cn="once.contoso.test")
    thumbprint = expected_thumbprint(pfx)
    decryptions.clear()  # the test's own helper decrypted it too
    news = {"connection": CONNECTION, "pfx": pfx, "pfx_password": PASSWORD}

    assert inspect_pfx(pfx, PASSWORD).thumbprint == thumbprint  # the stack loader
    assert pfx_thumbprint(pfx, PASSWORD) == thumbprint  # the program's known-in-preview thumbprint
    provider = CertificateProvider()
    checked = provider.check({}, news)
    assert checked.failures == []
    olds = {**checked.inputs, "thumbprint": thumbprint}
    assert provider.diff(thumbprint, olds, dict(checked.inputs)).changes is False
    assert CertificateModel.model_validate(news).resource_id() == thumbprint
    assert decryptions == [PASSWORD.encode()]


def test_another_password_or_another_pfx_is_decrypted_on_its_own(decryptions: list[bytes | None]) -> None:
    key = rsa_key()
    certificate = make_certificate(key)
    first = make_pfx(key=key, certificate=certificate)
    again = make_pfx(key=key, certificate=certificate, password="Another-Passw0rd")
    other = make_pfx()
    decryptions.clear()
    for pfx, password in [(first, PASSWORD), (again, "Another-Passw0rd"), (other, PASSWORD), (first, PASSWORD)]:
        inspect_pfx(pfx, password)
    assert decryptions == [PASSWORD.encode(), b"Another-Passw0rd", PASSWORD.encode()]
    assert pfx_thumbprint(first, PASSWORD) == pfx_thumbprint(again, "Another-Passw0rd")


def test_a_wrong_password_is_refused_every_time_after_one_attempt(decryptions: list[bytes | None]) -> None:
    pfx = make_pfx()
    decryptions.clear()
    for _ in range(3):
        with pytest.raises(PfxRefused) as refused:
            inspect_pfx(pfx, "Wr0ng-Passw0rd")
        assert refused.value.property == "pfx_password"
        assert "The specified network password is not correct." in refused.value.message
    with pytest.raises(PfxRefused):
        pfx_thumbprint(pfx, "Wr0ng-Passw0rd")
    assert decryptions == [b"Wr0ng-Passw0rd"]


def test_threads_asking_at_once_share_one_decryption(decryptions: list[bytes | None]) -> None:
    pfx = make_pfx()
    decryptions.clear()
    start = threading.Barrier(8)
    thumbprints: list[str] = []

    def ask() -> None:
        start.wait()
        thumbprints.append(inspect_pfx(pfx, PASSWORD).thumbprint)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(thumbprints) == 8 and len(set(thumbprints)) == 1
    assert decryptions == [PASSWORD.encode()]


def test_the_cache_holds_no_secret_and_no_private_key(decryptions: list[bytes | None]) -> None:
    password = "Cache-Secret-Passw0rd-7f3a"
    pfx = make_pfx(password=password)
    inspect_pfx(pfx, password)
    cached = list(pfx_module._cache.items())
    assert len(cached) == 1
    cache_key, outcome = cached[0]
    assert password.encode() not in cache_key and len(cache_key) == 32
    contents = outcome.result()
    fields = [getattr(contents, f.name) for f in dataclasses.fields(contents)]
    fields += [getattr(contents.key, f.name) for f in dataclasses.fields(contents.key)]
    assert not any(isinstance(value, PrivateKeyTypes) for value in fields)
    text = repr(cached)
    assert password not in text and pfx[:64] not in text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"key": rsa_key(1024)}, "holds an RSA-1024 key"),
        ({"key": dsa.generate_private_key(2048)}, "holds a DSA key"),
        ({"signature": "sha1"}, "signed with SHA1"),
        ({"valid_from_days": -30, "valid_days": 10}, "expired on"),
        ({"with_key": False}, "no private key"),
    ],
)
def test_the_manual_rules_still_apply_to_a_cached_pfx(
    decryptions: list[bytes | None], options: dict[str, Any], message: str
) -> None:
    pfx = make_pfx(**options)
    for _ in range(2):  # the first answer and the remembered one
        with pytest.raises(PfxRefused, match=message):
            inspect_pfx(pfx, PASSWORD)


def test_an_ec_key_on_an_allowed_curve_is_accepted(decryptions: list[bytes | None]) -> None:
    key: PrivateKeyTypes = ec.generate_private_key(ec.SECP384R1())
    assert inspect_pfx(make_pfx(key=key), PASSWORD).key_algorithm == "EC-secp384r1"
