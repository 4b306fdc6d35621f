#!/usr/bin/env python3
"""Networking helpers for bench/run.sh section f (all traffic stays in the
bench's own network namespace).

  netbench.py until-answers HOST PORT -- CMD...   run CMD, print ms until HOST:PORT accepts
  netbench.py throughput HOST PORT MIB            send MIB MiB to a sink, print MB/s
  netbench.py connections HOST PORT SECONDS       HTTP GET / in a loop, print connections/s
  netbench.py first-byte HOST PORT                one HTTP GET /, print ms from connect to its first byte
"""
import socket
import subprocess
import sys
import time


def connects(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def until_answers(host, port, cmd):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    deadline = t0 + 30
    while not connects(host, port):
        if time.perf_counter() > deadline:
            sys.exit("no answer in 30 s")
        time.sleep(0.001)
    print(f"{(time.perf_counter() - t0) * 1000:.1f}")


def throughput(host, port, mib):
    chunk = b"\0" * (1 << 20)
    s = socket.create_connection((host, port), timeout=10)
    t0 = time.perf_counter()
    for _ in range(mib):
        s.sendall(chunk)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)  # the sink closes once it has read everything
    dt = time.perf_counter() - t0
    s.close()
    print(f"{mib * (1 << 20) / dt / 1e6:.0f}")


def connections(host, port, seconds):
    n = 0
    req = b"GET / HTTP/1.0\r\n\r\n"
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(req)
            while s.recv(65536):
                pass
        n += 1
    print(f"{n / (time.perf_counter() - t0):.0f}")


def first_byte(host, port):
    t0 = time.perf_counter()
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        if not s.recv(1):
            sys.exit("no answer")
        t1 = time.perf_counter()
        while s.recv(65536):
            pass
    print(f"{(t1 - t0) * 1000:.3f}")


def main():
    what = sys.argv[1]
    if what == "until-answers":
        sep = sys.argv.index("--")
        until_answers(sys.argv[2], int(sys.argv[3]), sys.argv[sep + 1:])
    elif what == "throughput":
        throughput(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif what == "connections":
        connections(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    elif what == "first-byte":
        first_byte(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
