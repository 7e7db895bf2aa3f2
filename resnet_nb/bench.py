"""Placeholder filled in by the benchmark work."""
import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass


def run_from_args(args: argparse.Namespace) -> None:
    raise ValueError("bench: not implemented yet")
