"""sandbox: run a Kubernetes Pod on one Linux machine with namespaces, no cluster needed.

This package's __init__ imports nothing: `sandbox` start-up cost is a feature, and the CLI
imports each verb's module only when it runs.
"""
