import ipaddress

import pytest

from shiftboss.testing.node.network import PodNetwork


def test_two_nodes_hold_different_blocks_until_released(tmp_path):
    first = PodNetwork.claim(tmp_path)
    second = PodNetwork.claim(tmp_path)
    assert first.block != second.block
    assert set(first.addresses()).isdisjoint(second.addresses())
    block = first.block
    first.release()
    third = PodNetwork.claim(tmp_path)
    assert third.block == block  # a released block is handed out again
    second.release()
    third.release()


def test_addresses_skip_network_gateway_and_broadcast_octets(tmp_path):
    network = PodNetwork.claim(tmp_path)
    addresses = network.addresses()
    first = [next(addresses) for _ in range(300)]
    network.release()
    assert first[0] == f"127.{network.block}.0.2"
    assert all(int(a.rsplit(".", 1)[1]) not in (0, 1, 255) for a in first)


def test_pod_addresses_stay_below_the_service_cidr():
    network = PodNetwork(7)
    addresses = list(network.addresses())
    assert str(network.services) == "127.7.240.0/20"
    assert addresses[-1] == "127.7.239.254"
    assert len(addresses) == 240 * 253  # 240 /24s, less .0, .1 and .255 of each
    assert not any(ipaddress.IPv4Address(a) in network.services for a in addresses)


def test_fixed_service_ips_come_from_the_static_band():
    network = PodNetwork(7)
    assert network.service_ip(2) == "127.7.240.2"
    assert network.service_ip(255) == "127.7.240.255"
    for offset in (0, 1, 256):  # the network address, the kubernetes Service, the dynamic band
        with pytest.raises(ValueError, match="offset"):
            network.service_ip(offset)


@pytest.mark.parametrize("block", [0, 255])
def test_blocks_outside_127_1_to_127_254_are_refused(block):
    with pytest.raises(ValueError, match="block"):
        PodNetwork(block)
