import pytest
import torch

from staa_snn.functional import SURROGATES, Rectangle, get_surrogate, heaviside, indicator


def _grid():
    # float64 points that avoid the kinks of the piecewise surrogates (|x| = a/2, a, 0 exactly)
    return torch.linspace(-2.013, 2.017, 401, dtype=torch.float64)


@pytest.mark.parametrize("name", sorted(SURROGATES))
@pytest.mark.parametrize("alpha", [0.5, 1.0, 3.0])
def test_gradient_matches_finite_difference_of_primitive(name, alpha):
    sg = get_surrogate(name, alpha)
    x = _grid().requires_grad_(True)
    sg(x).sum().backward()
    eps = 1e-6
    with torch.no_grad():
        fd = (sg.primitive(x + eps) - sg.primitive(x - eps)) / (2 * eps)
    torch.testing.assert_close(x.grad, fd, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(sg.grad(x.detach()), fd, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_forward_is_heaviside_and_primitive_is_a_step(name):
    sg = get_surrogate(name)
    x = torch.tensor([-3.0, -1e-7, 0.0, 1e-7, 3.0], dtype=torch.float64)
    assert sg(x).tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    far = torch.tensor([-1e4, 1e4], dtype=torch.float64)
    torch.testing.assert_close(sg.primitive(far), torch.tensor([0.0, 1.0], dtype=torch.float64), atol=1e-3, rtol=0)
    # a primitive rising from 0 to 1 integrates the gradient to one
    xs = torch.linspace(-60, 60, 600001, dtype=torch.float64)
    assert abs(torch.trapezoid(sg.grad(xs), xs).item() - 1.0) < 1e-2


def test_rectangle_is_the_papers_window():
    sg = Rectangle()  # a = 1: dS/dH = 1 on |H - V_th| < 1/2
    x = torch.tensor([-0.6, -0.49, 0.0, 0.49, 0.6], requires_grad=True)
    sg(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
    sg2 = Rectangle(0.5)
    assert sg2.grad(torch.tensor([0.2, 0.3])).tolist() == [2.0, 0.0]


def test_heaviside_dtype_and_unknown_name():
    assert heaviside(torch.tensor([0.0, -1.0], dtype=torch.bfloat16)).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="unknown surrogate 'gauss'.*rectangle"):
        get_surrogate("gauss")
    with pytest.raises(ValueError, match="alpha must be a positive"):
        get_surrogate("sigmoid", -1.0)


def test_indicator_writes_floats_and_keeps_autograd_working():
    x = torch.tensor([-1.0, 0.0, 0.5, 2.0], dtype=torch.float64)
    assert indicator(torch.ge, x, 0.5).tolist() == [0.0, 0.0, 1.0, 1.0]
    out = torch.full_like(x, 7.0)
    assert indicator(torch.lt, x, 0.5, out=out) is out and out.tolist() == [1.0, 1.0, 0.0, 0.0]
    leaf = x.clone().requires_grad_(True)  # with autograd recording, no out= kernel (it would refuse)
    y = indicator(torch.ge, leaf, 0.0)
    assert y.dtype == torch.float64 and y.tolist() == [0.0, 1.0, 1.0, 1.0] and not y.requires_grad
