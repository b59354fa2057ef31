from __future__ import annotations

from django import forms

from catalog.models import ProductEvent


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. “Shopify sync”")


class WebhookForm(forms.Form):
    url = forms.URLField(
        max_length=2000, assume_scheme="https", help_text="Where events are POSTed"
    )
    events = forms.MultipleChoiceField(
        choices=ProductEvent.Kind.choices, widget=forms.CheckboxSelectMultiple
    )
    description = forms.CharField(max_length=200, required=False)


class ExportForm(forms.Form):
    format = forms.ChoiceField(
        choices=[("csv", "CSV"), ("jsonl", "JSON Lines"), ("google-merchant", "Merchant feed")]
    )
    q = forms.CharField(max_length=200, required=False)
    status = forms.CharField(required=False)
    category = forms.IntegerField(required=False)
