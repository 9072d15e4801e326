include $(sort $(wildcard $(BR2_EXTERNAL_GUARDIAN_PATH)/package/*/*.mk))
