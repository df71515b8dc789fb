"""Pulumi dynamic providers that manage Windows resources over WinRM.

Layers, each importing only the ones before it:
``transport`` (WS-Management over HTTP(S), no PowerShell, no Pulumi) ->
``scripting`` (PowerShell script files, JSON in and out) ->
one package per resource (model, provider, messages, scripts) ->
``components`` -> ``__main__.py``.
"""
