from pathlib import Path

from django import forms

ALLOWED_SUFFIXES = {".csv", ".jsonl", ".ndjson", ".json"}


class ImportUploadForm(forms.Form):
    file = forms.FileField(
        help_text="CSV or JSON Lines: sku (required), title, description, brand, "
        "image_url and/or image_path (several separated by |, first is primary)."
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if Path(upload.name).suffix.lower() not in ALLOWED_SUFFIXES:
            raise forms.ValidationError("Upload a .csv or .jsonl file.")
        return upload
