"""Local runs only: register the example images the simulated cluster's profiles know, so a
newcomer can create environments straight away."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from environments.image_services import ImageData, image_create
from environments.models import Image

# The references match the example images of infrastructure/simulator/profiles/_images.yaml and
# the Dockerfiles under images/ (images/systemd and images/plain).
DEMO_IMAGES = (
    ImageData(
        repository="ghcr.io/coderadmin/example-systemd",
        tags=("24.04", "22.04"),
        default_tag="24.04",
        description="Ubuntu with systemd as /sbin/init and Docker enabled as a service: made for CVMs.",
        min_cpu_millicores=500,
        min_memory_mib=1024,
        min_disk_gib=10,
    ),
    ImageData(
        repository="ghcr.io/coderadmin/example-plain",
        tags=("24.04",),
        description="Plain Ubuntu with build tools and no init system; runs with a keep-alive entrypoint.",
    ),
)


class Command(BaseCommand):
    help = "Register the example images (idempotent). DEBUG with the simulated cluster only."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG or settings.CLUSTER_MODE != "simulated":
            raise CommandError("Demo images are for local runs on the simulated cluster only.")
        actor = get_user_model().objects.filter(username="admin").first()
        for data in DEMO_IMAGES:
            if Image.objects.filter(repository=data.repository).exists():
                continue
            image_create(actor=actor, data=data)
            self.stdout.write(f"  image    {data.repository}:{data.default_tag or data.tags[0]}")
