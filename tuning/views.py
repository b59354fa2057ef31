"""Prompt tuning pages, for taxonomy admins and managers (prompt versions
are annotator's pages): the corrections browser, offline evaluations and threshold calibration.

Each view parses its form, calls one service and renders; filter pages and
the evaluation progress answer htmx with their results partial."""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import messages
from django.db.models import Count, Q
from django.http import HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.roles import MANAGERS, TAXONOMY_ADMINS, role_required
from annotator.models import PromptVersion, RoutingSettingChange
from annotator.services import routing_threshold_set
from catalog.models import Category
from catalog.taxonomy.services import TaxonomyChangeError, category_threshold_set
from config.http import HtmxHttpRequest
from review.models import Correction
from tuning import services
from tuning.models import EvaluationRun

TUNERS = (TAXONOMY_ADMINS, MANAGERS)


def _categories():
    return Category.objects.order_by("path")


class EvaluationForm(forms.Form):
    prompt_version = forms.ModelChoiceField(
        queryset=PromptVersion.objects.order_by("-version"),
        label="Prompt version",
        empty_label=None,  # the newest version comes first: usually the one to try
    )
    model = forms.CharField(
        max_length=200,
        required=False,
        help_text="Blank: the version's own model.",
        widget=forms.TextInput(attrs={"list": "known-models"}),
    )
    sample = forms.ChoiceField(choices=EvaluationRun.Sample.choices, initial="random")
    size = forms.IntegerField(min_value=1, max_value=services.MAX_EVALUATION_SIZE, initial=100)
    seed = forms.IntegerField(
        required=False, min_value=0, max_value=2**31 - 1, help_text="Blank: a new random seed."
    )


class CorrectionFilterForm(forms.Form):
    category = forms.ModelChoiceField(queryset=_categories(), required=False)
    model = forms.CharField(max_length=200, required=False)
    prompt_version = forms.ModelChoiceField(
        queryset=PromptVersion.objects.order_by("-version"), required=False
    )
    date_from = forms.DateField(required=False)
    date_to = forms.DateField(required=False)


class CalibrationForm(forms.Form):
    prompt_version = forms.ModelChoiceField(
        queryset=PromptVersion.objects.order_by("-version"),
        required=False,
        help_text="Blank: the active version.",
    )
    target = forms.FloatField(min_value=50, max_value=100, initial=95, label="Target precision (%)")
    kept = forms.ChoiceField(choices=list(services.KEPT_RULES.items()), initial="category")
    category = forms.ModelChoiceField(queryset=_categories(), required=False)
    bins = forms.IntegerField(min_value=2, max_value=20, initial=10)


class ThresholdApplyForm(forms.Form):
    category = forms.ModelChoiceField(queryset=_categories(), required=False)
    threshold = forms.FloatField(min_value=0, max_value=1)
    scope = forms.ChoiceField(choices=[("category", "category"), ("global", "global")])

    def clean(self):
        data = super().clean()
        if data.get("scope") == "category" and not data.get("category"):
            self.add_error("category", "Choose a category, or apply globally.")
        return data


# --- corrections browser -----------------------------------------------------------


@require_GET
@role_required(*TUNERS)
def corrections_browser(request: HtmxHttpRequest) -> HttpResponse:
    """The most frequent (AI value -> reviewer value) pairs of each field."""
    form = CorrectionFilterForm(request.GET)
    form.is_valid()  # invalid fields are shown with their error and not applied
    data = form.cleaned_data
    filters = services.CorrectionFilters(
        category=data.get("category"),
        model=data.get("model") or "",
        prompt_version=data.get("prompt_version"),
        date_from=data.get("date_from"),
        date_to=data.get("date_to"),
    )
    context = {
        "form": form,
        "fields": services.correction_pairs(filters=filters),
        "models": Correction.objects.exclude(model="")
        .order_by("model")
        .values_list("model", flat=True)
        .distinct(),
    }
    if request.htmx:
        return render(request, "tuning/corrections.html#results", context)
    return render(request, "tuning/corrections.html", context)


# --- offline evaluation --------------------------------------------------------------


def _evaluation_list(request: HtmxHttpRequest, form: EvaluationForm) -> HttpResponse:
    runs = EvaluationRun.objects.select_related("prompt_version", "baseline", "created_by")
    version = request.GET.get("version", "")
    if version.isdigit():  # from a prompt version's page: its runs only
        runs = runs.filter(prompt_version_id=int(version))
    runs = runs.annotate(done=Count("items", filter=Q(items__done_at__isnull=False)))[:30]
    active = PromptVersion.objects.filter(is_active=True).first()
    gold = services.gold_decisions().count()
    return render(
        request,
        "tuning/evaluation_list.html",
        {
            "form": form,
            "runs": runs,
            "active": active,
            "gold": gold,
            "known_models": sorted(name for name in settings.ANNOTATOR_PRICES if name != "local"),
        },
    )


@require_GET
@role_required(*TUNERS)
def evaluation_list(request: HtmxHttpRequest) -> HttpResponse:
    initial = {"prompt_version": request.GET.get("version"), "model": request.GET.get("model", "")}
    return _evaluation_list(request, EvaluationForm(initial=initial))


@require_POST
@role_required(*TUNERS)
def evaluation_start(request: HtmxHttpRequest) -> HttpResponse:
    form = EvaluationForm(request.POST)
    if form.is_valid():
        try:
            run = services.evaluation_start(user=request.user, **form.cleaned_data)
        except services.TuningError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Evaluation #{run.pk} of {run.total} items queued.")
            return redirect("evaluation_detail", pk=run.pk)
    return _evaluation_list(request, form)


@require_GET
@role_required(*TUNERS)
def evaluation_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(
        EvaluationRun.objects.select_related("prompt_version", "baseline", "created_by"), pk=pk
    )
    context = {"run": run, "report": services.evaluation_report(run)}
    if request.htmx:
        return render(request, "tuning/evaluation_detail.html#results", context)
    return render(request, "tuning/evaluation_detail.html", context)


# --- calibration ------------------------------------------------------------------------


CALIBRATION_DEFAULTS = {"target": "95", "kept": "category", "bins": "10"}


@require_GET
@role_required(*TUNERS)
def calibration(request: HtmxHttpRequest) -> HttpResponse:
    """Reliability curve and the lowest threshold reaching the target
    precision, for the active version unless another is chosen."""
    form = CalibrationForm({**CALIBRATION_DEFAULTS, **request.GET.dict()})
    form.is_valid()  # invalid fields are shown with their error; defaults apply
    data = form.cleaned_data
    version = data.get("prompt_version") or PromptVersion.objects.filter(is_active=True).first()
    result = None
    if version is not None:
        result = services.calibration_compute(
            prompt_version=version,
            target=data.get("target", 95) / 100,
            kept_rule=data.get("kept", "category"),
            category=data.get("category"),
            bins=data.get("bins", 10),
        )
    context = {
        "form": form,
        "result": result,
        "apply_form": ThresholdApplyForm(
            initial={
                "category": data.get("category"),
                "threshold": result.choice.threshold if result and result.choice else None,
            }
        ),
        "query": urlencode({k: v for k, v in request.GET.items() if v}),
        "kept_rules": services.KEPT_RULES,
        "threshold_history": RoutingSettingChange.objects.select_related("changed_by")[:10],
    }
    if request.htmx:
        return render(request, "tuning/calibration.html#results", context)
    return render(request, "tuning/calibration.html", context)


@require_POST
@role_required(*TUNERS)
def calibration_apply(request: HtmxHttpRequest) -> HttpResponse:
    """Apply a threshold globally, or to one category (and its subtree
    without its own)."""
    form = ThresholdApplyForm(request.POST)
    if form.is_valid() and form.cleaned_data["scope"] == "global":
        setting = routing_threshold_set(threshold=form.cleaned_data["threshold"], user=request.user)
        messages.success(request, f"Global review threshold set to {setting.review_threshold:g}.")
    elif form.is_valid():
        try:
            category = category_threshold_set(
                category=form.cleaned_data["category"],
                threshold=form.cleaned_data["threshold"],
                user=request.user,
            )
        except TaxonomyChangeError as exc:
            messages.error(request, f"Nothing was changed. {exc}")
        else:
            messages.success(
                request, f"{category.path}: review threshold set to {category.review_threshold:g}."
            )
    else:
        errors = "; ".join(f"{name}: {' '.join(e)}" for name, e in form.errors.items())
        messages.error(request, f"Nothing was changed. {errors}")
    # Back to the calibration as it was shown; only its own filters are kept.
    shown = QueryDict(request.POST.get("query", ""))
    back = urlencode({k: v for k, v in shown.items() if k in CalibrationForm.base_fields and v})
    return redirect(reverse("calibration") + (f"?{back}" if back else ""))
