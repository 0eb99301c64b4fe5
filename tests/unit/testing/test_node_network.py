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
