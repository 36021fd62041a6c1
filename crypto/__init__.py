"""Sunbid's pure cryptography library (密码库).

No Flask, no database: bytes and file objects in, bytes and file objects out. Used by the
platform (``bidding``, ``evaluator``) and by bidders' and custodians' offline clients.
"""
