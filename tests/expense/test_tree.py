"""A received invoice down the hierarchy: the issue's public example, exactly."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from sitegate.cloud.expense.tree import Node, TreeError, distribute


def test_public_example_complex_buildings_tenants() -> None:
    """The complex is billed 200.00 for 50 kWh (4.00 a kWh). Buildings metered 25 and 20
    kWh: 200 x 25/50 = 100.00 and 200 x 20/50 = 80.00; 5 kWh unmetered = 20.00 stays at
    the complex (reported, not charged). The first building's tenants with 5, 8 and 12 of
    its 25 kWh: 100 x 5/25 = 20.00, 32.00, 48.00 (no loss)."""
    nodes = {n.id: n for n in [
        Node("complex", None, None),
        Node("b1", "complex", D(25)), Node("b2", "complex", D(20)),
        Node("t1", "b1", D(5)), Node("t2", "b1", D(8)), Node("t3", "b1", D(12))]}
    s = distribute(nodes, "complex", D("200.00"), D(50))
    assert (s.loss_consumption, s.loss_amount) == (D(5), D("20.00"))
    b1, b2 = s.children
    assert (b1.amount, b2.amount) == (D("100.00"), D("80.00"))
    assert [(t.node, t.amount) for t in b1.children] == [
        ("t1", D("20.00")), ("t2", D("32.00")), ("t3", D("48.00"))]
    assert b1.loss_amount == D("0.00") and b2.children == []


def test_thirds_add_up_to_the_cent_and_bad_trees_are_named() -> None:
    # 100.00 over 1, 1, 1 kWh of 3: 33.333.. each; floors 33.33 x 3 = 99.99, the cent to
    # the first by the stated order (equal remainders): 33.34, 33.33, 33.33
    nodes = {n.id: n for n in [Node("r", None, None), Node("a", "r", D(1)),
                               Node("b", "r", D(1)), Node("c", "r", D(1))]}
    s = distribute(nodes, "r", D("100.00"), D(3))
    assert [c.amount for c in s.children] == [D("33.34"), D("33.33"), D("33.33")]
    with pytest.raises(TreeError, match="more than the parent"):
        distribute(nodes, "r", D("100.00"), D(2))
    nodes["b"] = Node("b", "r", None)
    with pytest.raises(TreeError, match="b under r has no metered consumption"):
        distribute(nodes, "r", D("100.00"), D(3))
