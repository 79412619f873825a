"""Extra link from the deploy task to the model endpoint it rolled out."""

from __future__ import annotations

from mlops_provider.links.base import MlopsBaseLink


class KServeEndpointLink(MlopsBaseLink):
    """Link to the model's V2 metadata on the endpoint (KServe URL or the local endpoint)."""

    name = "Model endpoint"
    key = "kserve_endpoint"
    format_str = "{endpoint_url}/v2/models/{model_name}"
