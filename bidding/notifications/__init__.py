"""Notifications (消息通知): the in-app inbox of bidders, tenderers and agencies."""
