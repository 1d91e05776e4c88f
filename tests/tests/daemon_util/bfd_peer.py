# A scripted BFD peer (RFC 5880 asynchronous mode, RFC 5881 single hop) for the lab: it
# stands where a director (or whoever forges a director's address) stands and sends the
# timers a test asks for, values a real BFD implementation refuses to configure (zero,
# 71 minutes). It is not a BFD implementation: it answers the agent's state (Down -> Init,
# Init/Up -> Up) and its Polls, and nothing else.
#
# usage: python3 bfd_peer.py SRC DST CTL LOG
#   SRC  the address it speaks from (bound, UDP 3784 and a source port, TTL 255)
#   DST  the agent's address
#   CTL  a JSON file, re-read when it changes:
#        {"every_ms": 100, "desired_min_tx": 100000, "required_min_rx": 100000, "mult": 3}
#        every_ms 0 stops sending (the peer falls silent).
#   LOG  one line per packet received from the agent:
#        "<monotonic s> state=<0-3> poll=<0|1> final=<0|1> my=<n> your=<n> tx=<us> rx=<us>"
import json
import os
import random
import select
import socket
import struct
import sys
import time

src, dst, ctl_path, log_path = sys.argv[1:5]
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rx.bind((src, 3784))
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
tx.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
tx.bind((src, random.randint(49152, 65535)))
log = open(log_path, "a", buffering=1)

MY_DISC = 4242
ctl = {"every_ms": 100, "desired_min_tx": 100000, "required_min_rx": 100000, "mult": 3}
ctl_mtime = None
agent_state = 1
agent_disc = 0
next_send = 0.0


def send(final=False):
    if agent_disc == 0:
        state = 1
    elif agent_state == 1:
        state = 2
    elif agent_state in (2, 3):
        state = 3
    else:
        state = 1
    your = agent_disc
    b1 = (state << 6) | (0x10 if final else 0)
    pkt = struct.pack(
        "!BBBBIIIII",
        0x20,
        b1,
        ctl["mult"],
        24,
        MY_DISC,
        your,
        ctl["desired_min_tx"],
        ctl["required_min_rx"],
        0,
    )
    tx.sendto(pkt, (dst, 3784))


while True:
    try:
        m = os.stat(ctl_path).st_mtime_ns
        if m != ctl_mtime:
            with open(ctl_path) as f:
                ctl.update(json.load(f))
            ctl_mtime = m
    except (OSError, ValueError):
        pass
    now = time.monotonic()
    if ctl["every_ms"] > 0 and now >= next_send:
        send()
        next_send = now + ctl["every_ms"] / 1000.0
    r, _, _ = select.select([rx], [], [], 0.01)
    if not r:
        continue
    data, frm = rx.recvfrom(128)
    if frm[0] != dst or len(data) < 24:
        continue
    _, b1, _, _, my, your, dtx, rrx, _ = struct.unpack("!BBBBIIIII", data[:24])
    agent_state = b1 >> 6
    agent_disc = my
    poll = (b1 >> 5) & 1
    log.write(
        "%.3f state=%d poll=%d final=%d my=%d your=%d tx=%d rx=%d\n"
        % (time.monotonic(), agent_state, poll, (b1 >> 4) & 1, my, your, dtx, rrx)
    )
    if poll and ctl["every_ms"] > 0:
        send(final=True)
