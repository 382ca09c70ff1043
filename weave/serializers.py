from rest_framework import serializers

from weave.models import Message


class MessageSerializer(serializers.ModelSerializer):
    """A message with its sender's name: `sent_by.full_name` is the N+1 trap."""

    sender = serializers.CharField(source="sent_by.full_name")

    class Meta:
        model = Message
        fields = ["id", "text", "sender", "thread_id", "updated"]
